# Containers sitting directly on a LAN, each with its own MAC and static
# address (the seed's `docker network create -d macvlan`). On a real host,
# set parent to the interface on the LAN and the LAN's subnet and gateway.
# run.sh tries it on two simulated hosts (network namespaces on one
# bridge), as root:  examples/macvlan/run.sh

variable "parent" {
  type    = string
  default = "eth0"
}

variable "address" {
  type        = string
  description = "This host's container address on the LAN."
}

image "busybox" {
  ref     = "busybox:local"
  archive = abspath("busybox.tar")
}

network "lan" {
  driver  = "macvlan"
  parent  = var.parent
  subnet  = "10.77.0.0/24"
  gateway = "10.77.0.254"
}

container "web" {
  image   = image.busybox
  command = ["sh", "-c", "mkdir -p /www && echo \"hello from ${var.address}\" > /www/index.html && exec httpd -f -p 80 -h /www"]
  restart = "always"

  network {
    name         = network.lan
    ipv4_address = var.address
  }
}
