#!/usr/bin/env bash
# A local OCI registry to try muelle with (the README's "By hand" block and make demo):
# Debian's docker-registry on 127.0.0.1:5000, or on a free port when 5000 is taken, with a
# busybox image built from this machine's busybox-static pushed to it.
#
#   eval "$(deploy/demo-registry.sh up)"   # sets REGISTRY=127.0.0.1:PORT and
#                                          # IMAGE=$REGISTRY/demo/busybox:1
#   deploy/demo-registry.sh down           # stops it and removes its storage
#
# DEMO_REGISTRY_PORT=P asks for that port: if something else listens there it is an error.
# A registry this script did not start is never pushed to: the listener must be its process.
# State (config, log, pid, port, blobs): $MUELLE_RUN/demo-registry (default /run/muelle/...).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${MUELLE_RUN:-/run/muelle}/demo-registry
PY=.venv/bin/python

say() { printf 'demo-registry: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The pids (ss -p: pid=N) and the description of what listens on TCP port $1, if anything.
listener_pids() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }
listener() { ss -Hltnp "sport = :$1" | awk '{print $4, $6}' | head -1; }
running() { [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; }
# True when the only listener on port $1 is the registry this script started.
serves_ours() { [ "$(listener_pids "$1")" = "$(cat "$DIR/pid")" ]; }

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start() {
  local port
  if [ -n "${DEMO_REGISTRY_PORT:-}" ]; then
    port=$DEMO_REGISTRY_PORT
    [ -z "$(listener "$port")" ] || die "port $port (DEMO_REGISTRY_PORT) is already in use: \
$(listener "$port"); pick a free port or unset DEMO_REGISTRY_PORT to use 5000 or a free one"
  else
    port=5000
    if [ -n "$(listener 5000)" ]; then
      port=$(free_port)
      say "port 5000 is in use ($(listener 5000)); the demo registry uses $port instead"
    fi
  fi
  mkdir -p "$DIR"
  cat > "$DIR/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $DIR/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
  # Its own session: it outlives this script and the terminal, until `down`.
  setsid docker-registry serve "$DIR/registry.yml" >"$DIR/registry.log" 2>&1 </dev/null &
  echo $! > "$DIR/pid"
  echo "$port" > "$DIR/port"
  for _ in $(seq 200); do
    running || die "the registry exited: $(tail -n 5 "$DIR/registry.log")"
    serves_ours "$port" && return 0
    sleep 0.05
  done
  stop
  die "the registry did not listen on 127.0.0.1:$port within 10 s (log: $DIR/registry.log)"
}

stop() {
  if running; then
    local pid
    pid=$(cat "$DIR/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  up)
    running || start
    port=$(cat "$DIR/port")
    [ "${DEMO_REGISTRY_PORT:-$port}" = "$port" ] || die "the demo registry already runs \
on port $port, not DEMO_REGISTRY_PORT=$DEMO_REGISTRY_PORT; run '$0 down' first"
    serves_ours "$port" || die "127.0.0.1:$port is not served by the demo registry \
(pid $(cat "$DIR/pid")) but by: $(listener "$port"); run '$0 down' and try again"
    image=127.0.0.1:$port/demo/busybox:1
    say "pushing a busybox image built from /bin/busybox to $image"
    "$PY" -m tests.support.images build "$DIR/layout" --tag 1 --push "$image" >&2
    echo "export REGISTRY=127.0.0.1:$port IMAGE=$image"
    ;;
  down) stop ;;
  *) die "usage: $0 up|down" ;;
esac
