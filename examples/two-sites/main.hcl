# One web server with two sites, on ports 80 and 81, served from a
# directory of this host (the seed's `docker run -p 80:80 -p 81:81 -v ...`).
# Build the image archive first, then apply as root:
#
#   examples/images/busybox.sh examples/two-sites/busybox.tar
#   berth apply examples/two-sites
#   wget -qO- http://127.0.0.1:8080/   # site A
#   wget -qO- http://127.0.0.1:8081/   # site B

image "busybox" {
  ref     = "busybox:local"
  archive = abspath("busybox.tar")
}

container "web" {
  image   = image.busybox
  command = ["sh", "-c", "httpd -p 80 -h /sites/a && exec httpd -f -p 81 -h /sites/b"]
  restart = "always"
  ports   = ["8080:80", "8081:81"]

  mount {
    type      = "bind"
    source    = abspath("sites")
    target    = "/sites"
    read_only = true
  }
}

output "ports" {
  value = container.web.published_ports
}
