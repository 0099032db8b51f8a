#!/usr/bin/env bash
# A Docker-API engine for the docker sandbox backend, from Debian packages only (no registry needed):
# podman serves the Docker API on a unix socket, runc runs the containers, and the image (Debian bookworm minbase
# with python3) is built with debootstrap from the mirror apt already uses. Idempotent: installs what is missing,
# builds the image once, starts the service unless it already answers. Needs root.
#
#   eval "$(sandboxes/podman_engine.sh)"        # sets DOCKER_HOST and TURNGYM_DOCKER_IMAGE
#
# Settings (environment): TURNGYM_ENGINE_DIR (state: config, socket, log; default /var/lib/turngym-engine),
# TURNGYM_DOCKER_IMAGE (default localhost/turngym-python:bookworm). Progress goes to stderr; stdout gets only the
# two `export` lines.
set -euo pipefail

DIR=${TURNGYM_ENGINE_DIR:-/var/lib/turngym-engine}
IMAGE=${TURNGYM_DOCKER_IMAGE:-localhost/turngym-python:bookworm}
SOCK="$DIR/podman.sock"
say() { echo "podman_engine: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "needs root (installs Debian packages, runs podman as root)"; exit 1
fi
mkdir -p "$DIR"
exec 9>"$DIR/lock"
flock -w 600 9 || { say "another setup holds $DIR/lock"; exit 1; }

missing=""
for p in podman runc debootstrap; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  say "installing:$missing"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi

# crun fails on hosts with hybrid cgroups; runc works. Explicit ulimits: podman's defaults come from the host's
# (possibly huge) limits, which runc refuses to set.
cat >"$DIR/containers.conf" <<'EOF'
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
EOF
export CONTAINERS_CONF="$DIR/containers.conf"

if ! podman image exists "$IMAGE"; then
  mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
             /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security | head -n1 | awk '{print $2}' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d "$DIR/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  say "building $IMAGE from $mirror (debootstrap, about 30-60 s)"
  debootstrap --variant=minbase --include=python3 bookworm "$rootfs" "$mirror" >"$DIR/debootstrap.log" 2>&1 \
    || { say "debootstrap failed; see $DIR/debootstrap.log"; tail -n 20 "$DIR/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/sh"]' - "$IMAGE" >&2
  rm -rf "$rootfs"
  trap - EXIT
fi

ping() { curl -sf --max-time 3 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if ! ping; then
  rm -f "$SOCK"
  say "starting podman system service on $SOCK (log: $DIR/service.log)"
  setsid nohup podman system service --time=0 "unix://$SOCK" >"$DIR/service.log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do ping && break; sleep 0.2; done
  ping || { say "the service did not answer on $SOCK"; tail -n 20 "$DIR/service.log" >&2; exit 1; }
fi

echo "export DOCKER_HOST=unix://$SOCK"
echo "export TURNGYM_DOCKER_IMAGE=$IMAGE"
