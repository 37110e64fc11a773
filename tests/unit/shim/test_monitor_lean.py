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


def test_the_runtime_run_in_the_monitor_gets_the_fds_and_gives_them_back(
        tmp_path: Path) -> None:
    """warm.here (api.here's): a runtime call in the monitor's process, with the standard
    fds it would have in a forked child, then the monitor's own back (and its cwd); its
    error comes back as the CLI's line, never as a traceback."""
    probe = f"""
import os, sys
from services.runtime import api, warm
from services.shim import monitor  # noqa: F401 - as the monitor has them loaded
out = os.open({str(tmp_path / "out")!r}, os.O_WRONLY | os.O_CREAT, 0o600)
home = os.getcwd()
def call():
    os.write(1, b"in the call")
    api.Runtime({str(tmp_path / "root")!r}).state("nosuch")
code, error = warm.here(call, api.describe, {str(tmp_path)!r}, {{1: out}})
print("after", code, error, os.getcwd() == home)
"""
    result = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True,
                            text=True, check=True, cwd="/", env=dict(os.environ, PYTHONPATH=REPO))
    assert result.stdout == "after 1 container 'nosuch' does not exist True\n"  # fd 1 is ours
    assert (tmp_path / "out").read_text() == "in the call"
