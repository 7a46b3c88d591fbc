# Pulling from a private registry with basic authentication. run.sh starts
# Debian's docker-registry with an htpasswd file, pushes a busybox image to
# it and applies this configuration.

variable "registry_password" {
  type      = string
  sensitive = true
}

variable "registry" {
  type    = string
  default = "127.0.0.1:5000"
}

registry "private" {
  address  = var.registry
  username = "oldboy"
  password = var.registry_password # never shown in plans, output or state files
  insecure = true                  # the example registry speaks plain HTTP
}

image "busybox" {
  ref      = "${var.registry}/tools/busybox:1.35"
  registry = registry.private
}

container "hello" {
  image   = image.busybox
  command = ["sh", "-c", "echo pulled from ${var.registry}; sleep 3600"]
}
