"""How each side of a benchmark is invoked, and whether it can run here at all."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.harness import Contender

VENV_BIN = Path(sys.executable).parent
MUELLE_RUNTIME = VENV_BIN / "muelle-runtime"
ENGINE_MODULES = ("clients.cli.main", "services.gateway.main", "services.imagestore.main",
                  "services.registry.main", "services.shim.main")
RUNTIMES = ("muelle", "runc", "crun")


def muelle_missing(*modules: str) -> str:
    """Why muelle cannot run yet ("" when it can): a service or the CLI is not written."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"muelle is not there yet: module {module} does not exist"
    return ""


def require(contenders: list[Contender]) -> list[Contender]:
    """Skip when MUELLE_BENCH_ONLY filtered out every side of a benchmark."""
    if not contenders:
        pytest.skip("MUELLE_BENCH_ONLY selects no contender of this benchmark")
    return contenders


def crun_argv(*args: str) -> list[str]:
    """crun 1.8.1 on a cgroup v1 hybrid host fails on the cgroup2 mount at
    /sys/fs/cgroup/unified: run it in a private mount namespace without that mount."""
    if Path("/sys/fs/cgroup/unified").is_mount():
        script = 'mount --make-rprivate / && umount /sys/fs/cgroup/unified && exec crun "$@"'
        return ["unshare", "-m", "sh", "-c", script, "crun", *args]
    return ["crun", *args]


def runtime_argv(name: str, root: Path, *args: str) -> list[str]:
    """The command line of OCI runtime ``name`` with its own state dir ``root``."""
    if name == "muelle":
        return [str(MUELLE_RUNTIME), "--root", str(root), *args]
    if name == "crun":
        return crun_argv("--root", str(root), *args)
    return [name, "--root", str(root), *args]


def runtime_missing(name: str) -> str:
    """Why runtime ``name`` cannot run here ("" when it can)."""
    if name == "muelle":
        return muelle_missing("services.runtime.main")
    if shutil.which(name) is None:
        return f"{name} is not installed (apt-get install {name})"
    return ""


def run_quiet(argv: list[str], timeout: float = 120, env: dict[str, str] | None = None) -> None:
    """Run a command with no stdio, raising with its stderr when it fails."""
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: "
                             f"{proc.stderr.decode(errors='replace')[-2000:]}")


# A benchmark may take far longer than a test (pytest's default here is 300 s): a full
# round of 20 parallel runs or a cold 200 MB pull, times (warm-up + pairs) x contenders.
BENCH_TIMEOUT = int(os.environ.get("MUELLE_BENCH_TIMEOUT") or 3600)
MARKS = [pytest.mark.root, pytest.mark.timeout(BENCH_TIMEOUT)]
