# On every host (no placement block): a file that says which host this is
# and what berth placed on it, and a tiny container that logs a heartbeat.

file "host_info" {
  path    = "/etc/berth-fleet/host.txt"
  content = <<-TXT
    host:   ${host.name}
    role:   ${local.role}
    labels: ${jsonencode(host.labels)}
  TXT
}

container "heartbeat" {
  image        = image.busybox
  command      = ["sh", "-c", "while true; do echo \"$(date -u +%FT%TZ) heartbeat from ${host.name} (${local.role})\"; sleep 30; done"]
  restart      = "always"
  network_mode = "none"
  stop_signal  = "SIGKILL" # a shell loop ignores SIGTERM as PID 1

  resources {
    cpus       = 0.1
    memory     = "16M"
    pids_limit = 16
  }
}
