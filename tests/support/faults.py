"""Fault injection on a whole engine: kill -9 a service, start it again, hold a runtime
verb at a gate, and count what a crash may leave behind.

Used by tests/faults/. Everything here acts on one test engine only (its pid files, its
root, run dir, cgroup parent and bridge), never on anything else on the host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path

from engine import launcher
from tests.bench.procs import comm
from tests.support import network
from tests.support.engine import Engine, cgroups_under, mounts_under, processes_mentioning

RUNC = "/usr/sbin/runc"


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0,
             what: str = "condition") -> None:
    """Poll ``predicate`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kill9(engine: Engine, name: str) -> None:
    """SIGKILL the service ``name`` of ``engine`` and reap it (the launcher started it
    from this process), so its pid file names a dead process."""
    pid = launcher.running_pid(engine.cfg, name)
    assert pid is not None, f"muelle-{name} is not running"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    wait_for(lambda: launcher.running_pid(engine.cfg, name) is None, what=f"{name} gone")


def restart(engine: Engine) -> None:
    """Start every service of ``engine`` that is not running, then wait until the
    gateway answers a real call (its channels reconnect after the health check)."""
    launcher.start(engine.cfg, str(engine.config_file), engine.services)
    wait_for(lambda: engine.cli("ps", "-aq", check=False).returncode == 0,
             what="the gateway to answer")


class Gate:
    """A runtime (``gated``, a runc wrapper) whose ``verb`` waits at a gate: the test
    learns the verb was reached (``wait_entered``), does its damage, then ``release()``.
    Configure it with ``Engine(extra_config=gate.config)`` and ``run --runtime gated``."""

    def __init__(self, workdir: Path, verb: str = "create") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.entered = workdir / "entered"
        self.opened = workdir / "open"
        self.wrapper = workdir / "gated-runc"
        self.wrapper.write_text(
            "#!/bin/sh\n"
            f'for a in "$@"; do if [ "$a" = {verb} ]; then : > {self.entered}; '
            f"while [ ! -e {self.opened} ]; do sleep 0.01; done; break; fi; done\n"
            f'exec {RUNC} "$@"\n')
        self.wrapper.chmod(self.wrapper.stat().st_mode | stat.S_IXUSR)
        self.config = f'[shim.runtimes]\ngated = "{self.wrapper}"\n'

    def wait_entered(self, timeout: float = 60.0) -> None:
        wait_for(self.entered.exists, timeout, what="the gated runtime verb")

    def release(self) -> None:
        self.opened.touch()


def service_pids(engine: Engine) -> set[int]:
    """The services, the shim's fork server (its child) and the fork server's standby
    monitor (its child, named muelle-standby): what an idle engine runs."""
    pids = {p for name in engine.services
            if (p := launcher.running_pid(engine.cfg, name)) is not None}
    parents = {p: _ppid(p) for p in _all_pids()}
    shim = launcher.running_pid(engine.cfg, "shim")
    servers = {p for p, ppid in parents.items() if ppid == shim and comm(p) != "muelle-standby"}
    standbys = {p for p, ppid in parents.items()
                if ppid in servers and comm(p) == "muelle-standby"}
    return pids | servers | standbys


def _all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def leftovers(engine: Engine) -> list[str]:
    """What an engine with no container must not have: container processes (monitors,
    inits, runtimes), mounts, cgroups, veths, DNAT rules, IP leases, container dirs in
    the shim and writable layers in the image store."""
    found = []
    procs = sorted(set(processes_mentioning(str(engine.dir))) - service_pids(engine))
    procs = [p for p in procs if _alive(p)]
    if procs:
        found.append(f"processes {[_describe(p) for p in procs]}")
    mounts = [m for m in mounts_under(engine.dir) if m != str(engine.root)]
    if mounts:
        found.append(f"mounts {mounts}")
    cgroups = [str(p) for d in cgroups_under(engine.cgroup_parent)
               for p in d.rglob("*") if p.is_dir()]
    if cgroups:
        found.append(f"cgroups {cgroups}")
    found += network.container_leftovers(engine.root, engine.bridge)
    for label, where in (("shim container dirs", engine.root / "shim" / "containers"),
                         ("writable layers", engine.root / "imagestore" / "containers")):
        names = sorted(p.name for p in where.iterdir()) if where.is_dir() else []
        if names:
            found.append(f"{label} {names}")
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _describe(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        cmd = "?"
    return f"{pid}: {cmd}"
