# The web tier: on every host labelled role = "web". The page is a file of
# the host, written by the local provider with that host's name and title,
# and served read-only by busybox httpd on a published port.

file "page" {
  placement {
    labels = { role = "web" }
    when   = var.web_enabled
  }

  path    = "${local.dir}/www/index.html"
  content = <<-HTML
    <!doctype html>
    <title>${local.site_title}</title>
    <h1>${local.site_title}</h1>
    <p>served by ${host.name} (zone ${lookup(host.labels, "zone", "unknown")})</p>
  HTML
}

container "web" {
  # The same placement as the page: a resource may only use resources that
  # are placed on its host too.
  placement {
    labels = { role = "web" }
    when   = var.web_enabled
  }

  image      = image.busybox
  command    = ["httpd", "-f", "-v", "-p", "80", "-h", "/www"]
  restart    = "always"
  ports      = ["${var.web_port}:80"]
  depends_on = [file.page]

  mount {
    type             = "bind"
    source           = "${local.dir}/www" # file.page's directory
    target           = "/www"
    read_only        = true
    create_host_path = true # validate and plan run before file.page exists
  }

  resources {
    cpus       = 0.5
    memory     = "64M"
    pids_limit = 64
  }

  healthcheck {
    command  = ["wget", "-q", "-O-", "http://127.0.0.1:80/"]
    interval = "10s"
    retries  = 3
  }
}
