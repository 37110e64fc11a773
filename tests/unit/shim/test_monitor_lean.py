"""The per-container monitor is one process per container: it starts without site-packages
(``python -S``, as the shim runs it) and imports no grpc, protobuf, structlog or config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[3])


def test_monitor_imports_only_the_stdlib_and_lean_shim_modules() -> None:
    probe = "import sys, services.shim.monitor; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True,
                         check=True, cwd="/", env=dict(os.environ, PYTHONPATH=REPO)).stdout
    modules = set(out.split())
    for heavy in ("grpc", "google.protobuf", "structlog", "tomllib", "services.core.config",
                  "services.shim.runtimes", "muelle"):
        assert heavy not in modules, heavy
