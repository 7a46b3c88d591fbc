# want: Output refers to sensitive values at 7: sensitive = true
variable "pw" {
  sensitive = true
  default   = "hunter22"
}
output "leak" {
  value = var.pw
}
