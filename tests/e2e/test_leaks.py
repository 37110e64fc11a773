"""200 sequential and 20 parallel `run --rm` (spread over muelle, runc and crun) leave
nothing behind: no mount, no cgroup, no process, no file descriptor in the services, no
container record, no veth on the engine's bridge, no IP lease, no file in the run dir."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine import launcher
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


def _leases(engine: Engine) -> int:
    return sum(len(json.loads(p.read_text()).get("leases", {}))
               for p in engine.root.rglob("ipam/*.json"))


def _bridge_ports(engine: Engine) -> list[str]:
    brif = Path("/sys/class/net") / engine.bridge / "brif"
    return sorted(os.listdir(brif)) if brif.is_dir() else []


def _run_files(engine: Engine) -> list[str]:
    # Pid files and sockets of the services stay; a container's must go. The runtimes'
    # compiled seccomp cache is keyed by profile, and the warm-up filled it.
    return sorted(str(p.relative_to(engine.run)) for p in engine.run.rglob("*")
                  if not p.is_dir() and not p.name.endswith((".log", ".bpf")))


def _snapshot(engine: Engine) -> dict[str, object]:
    return {
        "mounts": mounts_under(engine.dir),
        "cgroups": _cgroup_dirs(engine.cgroup_parent),
        "processes": len(processes_mentioning(str(engine.dir))),
        "containers": engine.cli("ps", "-a", "-q").stdout.split(),
        "container dirs": len(list((engine.root / "shim" / "containers").glob("*"))),
        "bridge ports": _bridge_ports(engine),
        "ip leases": _leases(engine),
        "run dir files": _run_files(engine),
    }


def _settled(engine: Engine, want: dict[str, object] | None = None,
             timeout: float = 10) -> dict[str, object]:
    """A snapshot once the engine is quiet: the fork server forks its standby monitor
    50 ms after the last request, so one process comes and goes right after a run. The
    first snapshot equal to ``want`` (or to the one before it), or the last one."""
    deadline = time.monotonic() + timeout
    last = _snapshot(engine)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = _snapshot(engine)
        if now == (want if want is not None else last):
            return now
        last = now
    return last


RUNTIMES = ("muelle", "runc", "crun")


def _run_rm(engine: Engine, image: str, runtime: str = "muelle") -> str:
    """"" on success, else the exit code and the error line."""
    proc = subprocess.run([CLI, "run", "--rm", "--runtime", runtime, image, "true"],
                          env=engine.env,
                          capture_output=True, text=True, timeout=120)
    return "" if proc.returncode == 0 else f"{proc.returncode}: {proc.stderr.strip()}"


def test_sequential_and_parallel_runs_leave_nothing(engine: Engine, image: str) -> None:
    for runtime in RUNTIMES:  # warm: the fork server, monitors' first start, seccomp cache
        assert _run_rm(engine, image, runtime) == ""
    before, fds_before = _settled(engine), _fds(engine)
    assert before["bridge ports"] == [] and before["ip leases"] == 0, before
    sequential = itertools.islice(itertools.cycle(RUNTIMES), 200)
    failed = [f for f in (_run_rm(engine, image, r) for r in sequential) if f]
    assert not failed, failed
    parallel = list(itertools.islice(itertools.cycle(RUNTIMES), 20))
    with ThreadPoolExecutor(20) as pool:
        failed = [f for f in pool.map(lambda r: _run_rm(engine, image, r), parallel) if f]
    assert not failed, failed
    assert _settled(engine, want=before) == before
    fds_after = _fds(engine)
    # A few descriptors come and go with gRPC's own connections; a leak grows with runs.
    assert all(fds_after[name] <= fds_before[name] + 4 for name in fds_before), \
        (fds_before, fds_after)
