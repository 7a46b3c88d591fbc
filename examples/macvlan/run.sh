#!/usr/bin/env bash
# Two simulated hosts on one LAN (network namespaces joined by a bridge),
# each running berth with its own state directory: the macvlan containers
# of the two hosts reach each other on the LAN. Everything is removed at
# the end. As root, from the repository: examples/macvlan/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
make -s build
examples/images/busybox.sh examples/macvlan/busybox.tar >/dev/null
W=$(mktemp -d /tmp/berth-macvlan.XXXXXX)
tag=$$
cleanup() {
  for h in 1 2; do
    BERTH_STATE_DIR=$W/state$h BERTH_CGROUP_PARENT=/berth-macvlan$h \
      nsenter --net=/run/netns/bmv$h-$tag bin/berth destroy -auto-approve \
      -var address=10.77.0.1$h examples/macvlan >/dev/null 2>&1 || true
    ip netns del bmv$h-$tag 2>/dev/null || true
  done
  ip netns del bmvlan-$tag 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add bmvlan-$tag
ip netns exec bmvlan-$tag ip link add lan type bridge
ip netns exec bmvlan-$tag ip link set lan up
for h in 1 2; do
  ip netns add bmv$h-$tag
  ip link add bmvl$h-$tag type veth peer name eth0 netns bmv$h-$tag
  ip link set bmvl$h-$tag netns bmvlan-$tag
  ip netns exec bmvlan-$tag ip link set bmvl$h-$tag master lan up
  ip netns exec bmv$h-$tag ip link set lo up
  ip netns exec bmv$h-$tag ip link set eth0 up
  ip netns exec bmv$h-$tag ip addr add 10.77.0.$h/24 dev eth0
  echo "== host $h"
  BERTH_STATE_DIR=$W/state$h BERTH_CGROUP_PARENT=/berth-macvlan$h \
    nsenter --net=/run/netns/bmv$h-$tag bin/berth apply -auto-approve \
    -var address=10.77.0.1$h examples/macvlan | tail -n 1
done
sleep 1
echo "== host 1's container asks host 2's container over the LAN:"
BERTH_STATE_DIR=$W/state1 bin/berth exec container.web -- wget -q -O- http://10.77.0.12/
