#!/usr/bin/env bash
# Builds a one-layer busybox image from Debian's busybox-static, as a
# `docker save` archive, with no registry and no Docker:
#
#   examples/images/busybox.sh OUT.tar [REF]
#
# REF defaults to "busybox:local". `berth image load -i OUT.tar` loads it,
# and so does an image resource with archive = "OUT.tar".
set -euo pipefail
out=${1:?usage: busybox.sh OUT.tar [REF]}
ref=${2:-busybox:local}
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "busybox.sh: $bb not found: apt-get install busybox-static" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,www,root,proc,sys,dev}
chmod 1777 "$root/tmp"
cp "$bb" "$root/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '<h1>hello from berth</h1>\n' >"$root/www/index.html"

# A deterministic layer: fixed owner, mtime and order.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=2024-01-01T00:00:00Z \
  -C "$root" -cf "$work/layer.tar" .
layer=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)

cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$layer"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"examples/images/busybox.sh"}]}
JSON
config=$(sha256sum "$work/config.json" | cut -d' ' -f1)

mkdir -p "$work/out/$layer"
mv "$work/layer.tar" "$work/out/$layer/layer.tar"
mv "$work/config.json" "$work/out/$config.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$config" "$ref" "$layer" >"$work/out/manifest.json"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=2024-01-01T00:00:00Z -C "$work/out" -cf "$out" .
echo "$out: $ref (layer sha256:$layer)"
