#!/usr/bin/env bash
# Runs the private-registry example end to end, as root, on this machine:
# a docker-registry with basic auth on 127.0.0.1:5000, a busybox image
# pushed to it with `berth image push`, then `berth apply`.
#
#   examples/private-registry/run.sh [BERTH]     (default: berth on PATH)
#
# Needs the Debian packages busybox-static, docker-registry, apache2-utils.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
berth=${1:-berth}
work=$(mktemp -d /tmp/berth-registry-example.XXXXXX)
export BERTH_STATE_DIR=${BERTH_STATE_DIR:-$work/state}
export BERTH_VAR_registry_password=s3cret

htpasswd -Bbn oldboy "$BERTH_VAR_registry_password" >"$work/htpasswd"
cat >"$work/config.yml" <<YAML
version: 0.1
storage:
  filesystem: {rootdirectory: $work/data}
http:
  addr: 127.0.0.1:5000
auth:
  htpasswd: {realm: berth-example, path: $work/htpasswd}
YAML
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  code=$(wget -S -q -O /dev/null http://127.0.0.1:5000/v2/ 2>&1 | awk '/HTTP\//{print $2}' | tail -1 || true)
  [ "$code" = 401 ] && break
  sleep 0.1
done

# The registry resource first, so that push finds its credentials.
"$berth" apply -auto-approve -target registry.private "$here"
"$here/../images/busybox.sh" "$work/busybox.tar" busybox:local
"$berth" image load -i "$work/busybox.tar"
"$berth" image push -from busybox:local 127.0.0.1:5000/tools/busybox:1.35
"$berth" image rm busybox:local
"$berth" apply -auto-approve "$here"
sleep 1
"$berth" logs container.hello
"$berth" destroy -auto-approve "$here"
