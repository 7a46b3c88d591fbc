# A web server in a container, serving a named volume that is filled from
# the image on first use. Build the image archive first:
#
#   examples/images/busybox.sh examples/web/busybox.tar
#
# then, as root:  berth apply examples/web  and  wget -qO- http://127.0.0.1:18080/

variable "port" {
  type    = number
  default = 18080
}

image "busybox" {
  ref     = "busybox:local"
  archive = abspath("busybox.tar") # a docker save archive: no registry needed
}

volume "site" {}

container "web" {
  image        = image.busybox
  command      = ["httpd", "-f", "-v", "-p", "127.0.0.1:${var.port}", "-h", "/www"]
  network_mode = "host"
  restart      = "always"

  mount {
    type   = "volume"
    source = volume.site # filled from the image's /www, once
    target = "/www"
  }

  healthcheck {
    command  = ["wget", "-q", "-O-", "http://127.0.0.1:${var.port}/"]
    interval = "2s"
    retries  = 3
  }
}

output "url" {
  value = "http://127.0.0.1:${var.port}/"
}
