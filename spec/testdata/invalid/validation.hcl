# want: Invalid value for variable at 2: port must be below 65536
variable "port" {
  type    = number
  default = 70000
  validation {
    condition     = var.port < 65536
    error_message = "port must be below 65536"
  }
}
