# want: No value for required variable at 2: BERTH_VAR_token
variable "token" {
  type = string
}
output "x" {
  value = var.token
}
