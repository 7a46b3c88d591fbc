# A service scaled to 3 replicas behind one published port: the kernel
# spreads new connections over the running replicas (nftables), so no
# proxy is needed in front. `berth stop 'container.web[1]'` takes one out
# of the rotation.
#
#   examples/images/busybox.sh examples/replicas/busybox.tar
#   berth apply examples/replicas
#   for i in 1 2 3 4 5 6; do wget -qO- http://127.0.0.1:8082/; done

image "busybox" {
  ref     = "busybox:local"
  archive = abspath("busybox.tar")
}

container "web" {
  count   = 3
  image   = image.busybox
  command = ["sh", "-c", "mkdir -p /www && echo \"served by $HOSTNAME\" > /www/index.html && exec httpd -f -p 80 -h /www"]
  restart = "always"
  ports   = ["8082:80"]
}
