#!/usr/bin/env bash
# The main job, end to end on this machine: a local registry, the four services, a busybox
# image built from this machine's busybox-static and pushed, then pulled and run isolated.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
DEMO=${DEMO_DIR:-/tmp/muelle-demo}
export MUELLE_ROOT=$DEMO/root MUELLE_RUN=$DEMO/run
unset MUELLE_CONFIG MUELLE_HOST
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
  step "cleaning up"
  muelle rm -f $(muelle ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  python -m engine.launcher down || true
  deploy/demo-registry.sh down || true
}
trap cleanup EXIT
mkdir -p "$DEMO"

# 127.0.0.1:5000, or a free port when something else listens there (DEMO_REGISTRY_PORT=P:
# that port or a clear error); it stops if the listener is not the registry it started.
step "starting a local OCI registry (Debian docker-registry) with a busybox image built from /bin/busybox"
registry_env=$(deploy/demo-registry.sh up)  # an assignment: its failure stops the demo
eval "$registry_env"

step "starting the muelle services (MUELLE_ROOT=$MUELLE_ROOT MUELLE_RUN=$MUELLE_RUN)"
python -m engine.launcher up

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
