"""List keeps statuses it already read (services/shim/statuscache.py): it must never
report one that changed behind it. Each test lets List cache a status first, changes it
by a way the cache must notice, and asks List again."""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path

import pytest
from muelle.shim.v1 import shim_pb2 as pb

from tests.integration.shim.conftest import ShimProcess

pytestmark = pytest.mark.root

PATIENCE = 30.0


def _listed(shim: ShimProcess, cid: str) -> pb.ContainerStatus:
    found = [c for c in shim.stub.List(pb.ListRequest()).containers if c.id == cid]
    assert len(found) == 1
    return found[0]


def _running(shim: ShimProcess) -> tuple[str, pb.ContainerStatus]:
    cid = shim.create(["sleep", "1000"])
    shim.stub.Start(pb.StartRequest(id=cid))
    listed = _listed(shim, cid)
    assert listed.status == "running" and listed.pid > 0
    assert _listed(shim, cid) == listed  # the second List is served from the cache
    return cid, listed


def _monitor_gone(status: pb.ContainerStatus) -> None:
    """Until the container's monitor has exited (it records the exit first)."""
    pid = int((Path(status.bundle) / "monitor.pid").read_text())
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # gone already
    try:
        assert select.select([fd], [], [], PATIENCE)[0], "the monitor did not exit"
    finally:
        os.close(fd)


def test_init_killed_behind_the_shims_back(shim: ShimProcess) -> None:
    cid, listed = _running(shim)
    os.kill(listed.pid, signal.SIGKILL)
    _monitor_gone(listed)
    after = _listed(shim, cid)
    assert (after.status, after.exit_code) == ("stopped", 137)
    assert after.finished_at


def test_monitor_killed(shim: ShimProcess) -> None:
    cid, listed = _running(shim)
    monitor = int((Path(listed.bundle) / "monitor.pid").read_text())
    os.kill(monitor, signal.SIGKILL)
    _monitor_gone(listed)
    after = _listed(shim, cid)
    assert (after.status, after.exit_code) == ("stopped", 255)


def test_pause_resume_and_restart_by_policy(shim: ShimProcess) -> None:
    cid = shim.create(["sleep", "1000"], restart_policy="always")
    shim.stub.Start(pb.StartRequest(id=cid))
    first = _listed(shim, cid)
    assert first.status == "running"
    shim.stub.Pause(pb.PauseRequest(id=cid))
    assert _listed(shim, cid).status == "paused"
    shim.stub.Resume(pb.ResumeRequest(id=cid))
    assert _listed(shim, cid).status == "running"
    os.kill(first.pid, signal.SIGKILL)
    _monitor_gone(first)
    # The policy starts a new run (after Docker's 100 ms back-off): List follows it.
    deadline = time.monotonic() + PATIENCE
    while True:
        now = _listed(shim, cid)
        if now.restart_count == 1 and now.status == "running":
            break
        assert now.status in ("running", "stopped") and now.restart_count <= 1
        assert time.monotonic() < deadline, f"List never showed the restart: {now}"
        time.sleep(0.05)
    assert now.pid != first.pid
    assert now == shim.stub.State(pb.StateRequest(id=cid))


def test_stop_then_list(shim: ShimProcess) -> None:
    cid, listed = _running(shim)
    assert [n.interface for n in listed.networks] == ["eth0"]  # the default bridge
    shim.stub.Stop(pb.StopRequest(id=cid, timeout=10))
    stopped = _listed(shim, cid)
    assert stopped.status == "stopped"  # stop returned: no lag allowed
    assert not stopped.networks  # given back at stop: network.json's copy was dropped
    assert stopped == shim.stub.State(pb.StateRequest(id=cid))
    shim.stub.Delete(pb.DeleteRequest(id=cid))
    assert not [c for c in shim.stub.List(pb.ListRequest()).containers if c.id == cid]
