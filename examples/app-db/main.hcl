# An app and a database on a private network: the app reaches the database
# by the name "db", and only the app is published. (busybox stands in for
# both: the "database" answers on port 5432 over HTTP, and the app shows
# what it got from it.)
#
#   examples/images/busybox.sh examples/app-db/busybox.tar
#   berth apply examples/app-db
#   wget -qO- http://127.0.0.1:8090/     # the app, with the database's answer

image "busybox" {
  ref     = "busybox:local"
  archive = abspath("busybox.tar")
}

network "private" {
  internal = true # no way out, no published ports: only the app reaches it
}

network "front" {}

container "database" {
  image   = image.busybox
  command = ["sh", "-c", "mkdir -p /data && echo 'rows from the database' > /data/index.html && exec httpd -f -p 5432 -h /data"]
  restart = "always"

  network {
    name    = network.private
    aliases = ["db"]
  }
}

container "app" {
  image   = image.busybox
  command = ["sh", "-c", "mkdir -p /www && while true; do wget -q -O /www/index.html http://db:5432/ || echo 'no database' > /www/index.html; sleep 2; done & exec httpd -f -p 80 -h /www"]
  restart = "always"
  ports   = ["8090:80"]

  network {
    name = network.front # first: its address serves the published port
  }
  network {
    name = network.private
  }
}
