"""muelle-engine: the four services in one process, each still on its own gRPC socket."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import launcher
from tests.support.engine import Engine

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def combined() -> Iterator[Engine]:
    with Engine(combined=True) as engine:
        yield engine


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def test_one_process_serves_all_four_sockets(combined: Engine) -> None:
    pids = {name: launcher.running_pid(combined.cfg, name) for name in launcher.ORDER}
    assert len(set(pids.values())) == 1 and None not in pids.values()
    pid = next(iter(pids.values()))
    assert pid is not None
    assert "engine.combined" in Path(f"/proc/{pid}/cmdline").read_text()
    for name in launcher.ORDER:
        assert launcher.healthy(combined.cfg.address(name)), name
    listening = {line.split()[-1] for line in Path("/proc/net/unix").read_text().splitlines()
                 if line.split()[-1].startswith(str(combined.run))}
    assert {f"{combined.run}/{n}.sock" for n in launcher.ORDER} <= listening
    assert _socket_inodes(pid)


def test_pull_and_run_isolated_through_the_combined_engine(combined: Engine,
                                                           busybox_ref: str) -> None:
    combined.cli("pull", busybox_ref)
    out = combined.cli("run", "--rm", busybox_ref, "sh", "-c",
                       "echo $$; hostname; ls /sys/fs/cgroup >/dev/null && echo ok").stdout
    pid, hostname, ok = out.split()
    assert pid == "1" and ok == "ok" and len(hostname) == 12
    assert combined.cli("ps", "-aq").stdout == ""


def test_stopping_stops_every_service(busybox_ref: str) -> None:
    engine = Engine(combined=True).start()
    try:
        pid = launcher.running_pid(engine.cfg, "gateway")
        assert pid is not None
    finally:
        engine.close()
    assert all(launcher.running_pid(engine.cfg, n) is None for n in launcher.ORDER)
    assert not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0


def test_an_unknown_service_is_one_error_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "engine.combined", "--services",
                           "gateway,nope"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("muelle-engine: --services: unknown service nope; "
                                   "choose from registry, imagestore, shim, gateway, dockerapi, "
                                   "cri")
