# The fleet: one repository, three hosts. Every agent evaluates these files
# for its own host (host.name and host.labels come from its agent.hcl) and
# applies only what is placed there:
#
#   web tier (web.hcl)       hosts labelled role = "web"   (web-1, web-2)
#   database (db.hcl)        the host named "db-1"
#   sidecar  (sidecar.hcl)   every host
#
# The image archive lives in the repository too, so that no host needs a
# registry: build it once with examples/images/busybox.sh busybox.tar and
# commit it (see ../README.md).

variable "web_enabled" {
  type        = bool
  default     = true
  description = "Set to false (in an agent's variables) to take the web tier off that host."
}

variable "web_port" {
  type    = number
  default = 8080
}

locals {
  # Per-host values: a map keyed by host.name, with a default for hosts
  # that are not listed.
  site_titles = {
    "web-1" = "Frankfurt edge"
    "web-2" = "Amsterdam edge"
  }
  site_title = lookup(local.site_titles, host.name, "a berth web host")

  # The role label, or "none" on a host that has no such label.
  role = lookup(host.labels, "role", "none")

  # Where the host-specific files go.
  dir = "/srv/berth-fleet"
}

# Every host loads the image: the web tier, the database and the sidecar all
# run busybox.
image "busybox" {
  ref     = "busybox:local"
  archive = abspath("busybox.tar") # a docker save archive: no registry needed
}
