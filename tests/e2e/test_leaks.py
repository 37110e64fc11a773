"""200 sequential and 20 parallel `run --rm` leave nothing behind: no mount, no cgroup, no
process, no file descriptor in the services, no container record."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.core import launcher
from tests.support.engine import CLI, Engine, mounts_under, processes_mentioning

pytestmark = pytest.mark.root


def _cgroup_dirs(parent: str) -> int:
    count = 0
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / parent
        if top.is_dir():
            count += sum(1 for p in top.rglob("*") if p.is_dir())
    return count


def _fds(engine: Engine) -> dict[str, int]:
    out = {}
    for name in launcher.ORDER:
        pid = launcher.running_pid(engine.cfg, name)
        assert pid is not None
        out[name] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def _snapshot(engine: Engine) -> dict[str, object]:
    return {
        "mounts": len(mounts_under(engine.dir)),
        "cgroups": _cgroup_dirs(engine.cgroup_parent),
        "processes": len(processes_mentioning(str(engine.dir))),
        "containers": engine.cli("ps", "-a", "-q").stdout.split(),
        "container dirs": len(list((engine.root / "shim" / "containers").glob("*"))),
    }


def _run_rm(engine: Engine, image: str) -> str:
    """"" on success, else the exit code and the error line."""
    proc = subprocess.run([CLI, "run", "--rm", image, "true"], env=engine.env,
                          capture_output=True, text=True, timeout=120)
    return "" if proc.returncode == 0 else f"{proc.returncode}: {proc.stderr.strip()}"


def test_sequential_and_parallel_runs_leave_nothing(engine: Engine, image: str) -> None:
    assert _run_rm(engine, image) == ""  # warm: the fork server and monitors' first start
    before, fds_before = _snapshot(engine), _fds(engine)
    failed = [f for f in (_run_rm(engine, image) for _ in range(200)) if f]
    assert not failed, failed
    with ThreadPoolExecutor(20) as pool:
        failed = [f for f in pool.map(lambda _: _run_rm(engine, image), range(20)) if f]
    assert not failed, failed
    assert _snapshot(engine) == before
    fds_after = _fds(engine)
    # A few descriptors come and go with gRPC's own connections; a leak grows with runs.
    assert all(fds_after[name] <= fds_before[name] + 4 for name in fds_before), \
        (fds_before, fds_after)
