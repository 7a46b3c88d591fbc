# berth agent configuration of db-1: install as /etc/berth/agent.hcl and
# run `berth agent --config /etc/berth/agent.hcl` (see ../berth-agent.service).
# The secrets it names are files readable by root only (mode 0600).

node {
  name   = "db-1" # seen by the configuration as host.name
  labels = { role = "db", zone = "a" } # seen as host.labels
}

state_dir = "/var/lib/berth"

repository {
  url           = "https://git.example.com/ops/fleet.git"
  branch        = "main"
  poll_interval = "15s" # webhooks make it faster; polling is the fallback

  auth {
    username   = "berth-agent"
    token_file = "/etc/berth/git-token" # a read-only deploy token
  }

  # Apply only commits signed by a key of the team:
  # verify {
  #   ssh_allowed_signers = "/etc/berth/allowed_signers"
  # }
}

drift {
  interval = "60s"
  mode     = "correct" # "report" only logs and counts drift
}

gossip {
  bind     = "192.0.2.21:7946"
  join     = ["192.0.2.11:7946", "192.0.2.12:7946"]
  key_file = "/etc/berth/gossip.key" # the same on every host: head -c 32 /dev/urandom | base64
}

api {
  # The unix socket (<state_dir>/agent.sock, root only) is always there;
  # this TCP listener lets `berth status --agent https://192.0.2.21:7947`
  # and `berth plan --fleet` reach the fleet from elsewhere.
  listen        = ["192.0.2.21:7947"]
  tls_cert_file = "/etc/berth/tls.crt"
  tls_key_file  = "/etc/berth/tls.key"
  token_file    = "/etc/berth/api-token"
}

webhook {
  listen      = "192.0.2.21:7948" # point the forge's push webhook at http://192.0.2.21:7948/v1/hooks/gitea
  secret_file = "/etc/berth/webhook-secret"
}

metrics {
  # No authentication: listen where only Prometheus reaches it.
  listen = "192.0.2.21:9947"
}

log_format = "json"
