#!/usr/bin/env bash
# Stop the muelle services of this host (and its Docker API and CRI). Running containers keep running.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m engine.launcher down ${MUELLE_CONFIG:+--config "$MUELLE_CONFIG"}
