# A small berth configuration that runs on any host: it manages two files
# with the built-in local provider, shows variables, locals, count, host
# values, a sensitive value and outputs.

variable "greeting" {
  type        = string
  default     = "hello"
  description = "What the files say."
}

variable "replicas" {
  type    = number
  default = 2
  validation {
    condition     = var.replicas >= 1 && var.replicas <= 5
    error_message = "replicas must be between 1 and 5."
  }
}

variable "api_token" {
  type      = string
  default   = "example-token-not-secret-really"
  sensitive = true
}

locals {
  dir = "/tmp/berth-example/${host.name}"
}

file "motd" {
  path    = "${local.dir}/motd"
  content = "${var.greeting} from ${host.name}\n"
}

file "replica" {
  count   = var.replicas
  path    = "${local.dir}/replica-${count.index}.conf"
  content = "replica ${count.index} follows ${file.motd.sha256}\n"
}

file "token" {
  path              = "${local.dir}/token"
  sensitive_content = var.api_token
  mode              = "0600"
}

output "motd_sha256" {
  value = file.motd.sha256
}

output "replica_paths" {
  value = file.replica[*].path
}
