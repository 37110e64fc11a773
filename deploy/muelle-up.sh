#!/usr/bin/env bash
# Start the muelle services for this host (registry, imagestore, shim, gateway) and the
# Docker API and the CRI in front of them (dockerapi on $MUELLE_RUN/docker.sock, cri on
# $MUELLE_RUN/cri.sock).
# Honours MUELLE_ROOT, MUELLE_RUN and MUELLE_CONFIG. Logs: $MUELLE_RUN/<service>.log.
# MUELLE_COMBINED=1: all in one process (muelle-engine, ~half the memory), engine.log.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m engine.launcher up ${MUELLE_CONFIG:+--config "$MUELLE_CONFIG"} \
  ${MUELLE_COMBINED:+--combined}
