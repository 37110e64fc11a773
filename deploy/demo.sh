#!/usr/bin/env bash
# The main job, end to end on this machine: a local registry, the four services, a busybox
# image built from this machine's busybox-static and pushed, then pulled and run isolated.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
DEMO=${DEMO_DIR:-/tmp/muelle-demo}
export MUELLE_ROOT=$DEMO/root MUELLE_RUN=$DEMO/run
unset MUELLE_CONFIG MUELLE_HOST
PORT=${DEMO_REGISTRY_PORT:-5000}
IMAGE=127.0.0.1:$PORT/demo/busybox:1
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
  step "cleaning up"
  muelle rm -f $(muelle ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  python -m services.core.launcher down || true
  [ -n "${REG_PID:-}" ] && kill "$REG_PID" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$DEMO"

step "starting a local OCI registry (Debian docker-registry) on 127.0.0.1:$PORT"
cat > "$DEMO/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $DEMO/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$DEMO/registry.yml" >"$DEMO/registry.log" 2>&1 & REG_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

step "building a busybox image from /bin/busybox and pushing it to $IMAGE"
python -m tests.support.images build "$DEMO/layout" --tag 1 --push "$IMAGE"

step "starting the muelle services (MUELLE_ROOT=$MUELLE_ROOT MUELLE_RUN=$MUELLE_RUN)"
python -m services.core.launcher up

step "pulling it with muelle"
show muelle pull "$IMAGE"
show muelle images

step "running it isolated"
show muelle run --rm --hostname demo "$IMAGE" sh -c \
  'echo "pid=$$ hostname=$(hostname) $(id)"; echo "processes seen: $(ls /proc | grep -c "^[0-9]")"; echo "interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " ")"; echo "capabilities: $(grep CapEff /proc/self/status)"'

step "a detached container with limits"
show muelle run -d --name web -m 64m --pids-limit 50 "$IMAGE" sh -c 'echo hello from web; sleep 1000'
show muelle ps
sleep 0.5
show muelle logs web
show muelle stop -t 2 web
show muelle ps -a
show muelle rm web
show muelle rmi "$IMAGE"
show muelle version
step "done"
