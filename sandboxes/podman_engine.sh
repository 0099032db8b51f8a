#!/usr/bin/env bash
# A Docker-API engine for the docker sandbox backend, from Debian packages only (no registry needed):
# podman serves the Docker API on a unix socket, runc runs the containers, and the image (Debian bookworm minbase
# with python3) is built with debootstrap from the mirror apt already uses. Idempotent: installs what is missing,
# builds the image once, starts the service unless it already answers. Needs root.
#
#   eval "$(sandboxes/podman_engine.sh)"        # start (or reuse): sets DOCKER_HOST and TURNGYM_DOCKER_IMAGE
#   sandboxes/podman_engine.sh stop             # remove leftover sandbox containers, stop the service it started
#
# Settings (environment): TURNGYM_ENGINE_DIR (state: config, lock, image build log; default
# /var/lib/turngym-engine), TURNGYM_ENGINE_SOCK (the socket; default $TURNGYM_ENGINE_DIR/podman.sock; the service's
# pid and log sit next to it), TURNGYM_DOCKER_IMAGE (default localhost/turngym-python:bookworm),
# TURNGYM_ENGINE_OWNER (a pid: the service belongs to that process; a watcher stops it and removes the containers
# labelled turngym.owner=<pid> when that process ends, even when it is killed; `stop` then removes only those
# containers; unset: `stop` removes every turngym sandbox container). Progress goes to stderr; stdout gets only the
# two `export` lines. Containers whose owner process no longer runs are removed at every start.
set -euo pipefail

DIR=${TURNGYM_ENGINE_DIR:-/var/lib/turngym-engine}
IMAGE=${TURNGYM_DOCKER_IMAGE:-localhost/turngym-python:bookworm}
SOCK=${TURNGYM_ENGINE_SOCK:-$DIR/podman.sock}
OWNER=${TURNGYM_ENGINE_OWNER:-}
PIDFILE="${SOCK%.sock}.pid"
WATCHFILE="${SOCK%.sock}.watch"
LOG="${SOCK%.sock}.log"
MODE=${1:-start}
say() { echo "podman_engine: $*" >&2; }

case "$MODE" in start | stop | watch) ;; *) say "usage: $0 [start|stop]"; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
  say "needs root (installs Debian packages, runs podman as root)"; exit 1
fi
if [ -n "$OWNER" ] && ! [[ "$OWNER" =~ ^[0-9]+$ ]]; then
  say "TURNGYM_ENGINE_OWNER must be a pid, got '$OWNER'"; exit 2
fi
mkdir -p "$DIR" "$(dirname "$SOCK")"
export CONTAINERS_CONF="$DIR/containers.conf"
ping() { curl -sf --max-time 3 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pid() {  # stop_pid PIDFILE WHAT: TERM, then KILL after 5 s
  local pid
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  say "stopped $2 (pid $pid)"
}
remove_containers() {  # remove_containers FILTER
  local left
  command -v podman >/dev/null || return 0
  left=$(podman ps -aq --filter "$1" 2>/dev/null || true)
  if [ -n "$left" ]; then
    say "removing $(echo "$left" | wc -l) sandbox container(s) ($1)"
    # shellcheck disable=SC2086
    podman rm -f -t 0 $left >/dev/null 2>&1 || true
  fi
}
remove_orphans() {  # containers whose owner process is gone (it was killed before it could remove them)
  local id owner
  while read -r id owner; do
    if [ -n "$id" ] && [[ "$owner" =~ ^[0-9]+$ ]] && ! kill -0 "$owner" 2>/dev/null; then
      remove_containers "id=$id"
    fi
  done < <(podman ps -a --filter label=turngym.sandbox --format '{{.ID}} {{index .Labels "turngym.owner"}}' \
             2>/dev/null || true)
}

if [ "$MODE" = watch ]; then  # run by `start` for an owned service: wait for the owner to end, then stop
  [ -n "$OWNER" ] || exit 2
  while kill -0 "$OWNER" 2>/dev/null; do sleep 1; done
  rm -f "$WATCHFILE"
  exec bash "$0" stop
fi

if [ "$MODE" = stop ]; then
  if [ "$$" != "$(cat "$WATCHFILE" 2>/dev/null)" ] && alive "$WATCHFILE"; then stop_pid "$WATCHFILE" "the watcher"; fi
  rm -f "$WATCHFILE"
  if [ -n "$OWNER" ]; then remove_containers "label=turngym.owner=$OWNER"; else remove_containers label=turngym.sandbox; fi
  if alive "$PIDFILE"; then
    stop_pid "$PIDFILE" "the service on $SOCK"
    rm -f "$PIDFILE" "$SOCK"
    if [ -n "$OWNER" ]; then rm -f "$LOG"; fi  # a process's own service: its log goes with it
  else
    say "no service of this script runs on $SOCK"
  fi
  exit 0
fi

exec 9>"$DIR/lock"
flock -w 600 9 || { say "another setup holds $DIR/lock"; exit 1; }

missing=""
for p in podman runc debootstrap curl; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  say "installing:$missing"
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    $missing >&2
fi

# crun fails on hosts with hybrid cgroups; runc works. Explicit ulimits: podman's defaults come from the host's
# (possibly huge) limits, which runc refuses to set. exit_command_delay = 0: podman otherwise keeps one conmon
# process per finished exec for 5 minutes (Docker's exec-inspect window), and the sandbox makes one exec per call.
conf=$(mktemp "$DIR/containers.conf.XXXXXX")
cat >"$conf" <<'EOF'
[engine]
runtime = "runc"
exit_command_delay = 0
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
EOF
if cmp -s "$conf" "$CONTAINERS_CONF"; then rm -f "$conf"; else
  mv "$conf" "$CONTAINERS_CONF"
  if alive "$PIDFILE"; then
    say "the engine settings changed: restarting the service"
    stop_pid "$PIDFILE" "the service on $SOCK"
    rm -f "$PIDFILE" "$SOCK"
  fi
fi

if ! podman image exists "$IMAGE"; then
  mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
             /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security | head -n1 | awk '{print $2}' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d "$DIR/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  say "building $IMAGE from $mirror (debootstrap, about 1-2 min)"
  debootstrap --variant=minbase --include=python3 bookworm "$rootfs" "$mirror" >"$DIR/debootstrap.log" 2>&1 \
    || { say "debootstrap failed; see $DIR/debootstrap.log"; tail -n 20 "$DIR/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/sh"]' - "$IMAGE" >&2
  rm -rf "$rootfs"
  trap - EXIT
fi

remove_orphans

if ! ping; then
  rm -f "$SOCK"
  say "starting podman system service on $SOCK (log: $LOG)"
  # 9>&-: the service must not inherit the setup lock (it would hold it for as long as it runs). It runs in $DIR:
  # conmon writes an `oom` marker into its working directory when a container is OOM-killed, which must not be the
  # caller's (a checkout, a user's project).
  (cd "$DIR" && exec setsid nohup podman system service --time=0 "unix://$SOCK" >"$LOG" 2>&1 </dev/null 9>&-) &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do ping && break; sleep 0.1; done
  ping || { say "the service did not answer on $SOCK"; tail -n 20 "$LOG" >&2; exit 1; }
  if [ -n "$OWNER" ]; then
    setsid nohup bash "$0" watch >>"$LOG" 2>&1 </dev/null 9>&- &
    echo $! >"$WATCHFILE"
  fi
fi

echo "export DOCKER_HOST=unix://$SOCK"
echo "export TURNGYM_DOCKER_IMAGE=$IMAGE"
