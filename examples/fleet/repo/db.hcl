# The database: only on the host named "db-1", with its data in a named
# volume that berth refuses to destroy. (busybox stands in for a database:
# it answers on port 5432 over HTTP with what the volume holds.)

volume "data" {
  placement {
    hosts = ["db-1"]
  }

  lifecycle {
    prevent_destroy = true # also refused when db-1 leaves hosts: move it deliberately
  }
}

container "db" {
  placement {
    hosts = ["db-1"]
  }

  image   = image.busybox
  command = ["sh", "-c", "[ -f /data/index.html ] || echo 'rows from the database on ${host.name}' > /data/index.html; exec httpd -f -p 5432 -h /data"]
  restart = "always"
  ports   = ["5432:5432"]

  mount {
    type   = "volume"
    source = volume.data
    target = "/data"
  }

  resources {
    memory     = "128M"
    pids_limit = 64
  }
}
