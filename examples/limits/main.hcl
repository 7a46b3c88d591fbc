# Resource limits and restart policies. Build the image archive first:
#
#   examples/images/busybox.sh examples/limits/busybox.tar
#
# then, as root: berth apply examples/limits, and berth stats -no-stream.
# Change a limit and plan again: berth updates the live cgroup in place.

image "busybox" {
  ref     = "busybox:local"
  archive = abspath("busybox.tar")
}

container "worker" {
  image   = image.busybox
  command = ["sh", "-c", "while true; do echo working; sleep 5; done"]
  restart = "unless-stopped"

  resources {
    cpus        = 0.5
    memory      = "64M"
    memory_swap = "64M"
    pids_limit  = 100
  }
}

# A job that fails: restarted with backoff, at most 3 times.
container "flaky" {
  image       = image.busybox
  command     = ["sh", "-c", "echo trying; exit 1"]
  restart     = "on-failure"
  max_retries = 3

  resources {
    memory = "16M"
  }
}
