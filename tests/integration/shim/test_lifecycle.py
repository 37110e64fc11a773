"""The shim as a real process driving real runtimes: run, logs, errors, stop, restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from muelle.shim.v1 import shim_pb2 as pb

from tests.integration.shim.conftest import RUNTIMES, ShimProcess
from vocab.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

pytestmark = pytest.mark.root


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_output_hostname_exit_code(shim: ShimProcess, runtime: str) -> None:
    cid, status = shim.run(["sh", "-c", "echo out; echo err >&2; hostname; id -u; exit 7"],
                           runtime=runtime, hostname="box", user="app")
    assert status.status == "stopped"
    assert status.exit_code == 7
    assert not status.oom_killed
    assert status.runtime == runtime
    assert status.started_at and status.finished_at
    assert shim.output(cid, "stdout") == b"out\nbox\n1000\n"
    assert shim.output(cid, "stderr") == b"err\n"
    shim.stub.Delete(pb.DeleteRequest(id=cid))
    with pytest.raises(NotFound):
        shim.stub.State(pb.StateRequest(id=cid))


def test_created_then_started_states(shim: ShimProcess) -> None:
    cid = shim.create(["sh", "-c", "echo hi"])
    state = shim.stub.State(pb.StateRequest(id=cid))
    assert state.status == "created" and state.pid > 0
    with pytest.raises(AlreadyExists):
        shim.stub.Create(pb.CreateRequest(id=cid, rootfs=shim.rootfs(),
                                          spec=pb.ContainerSpec(args=["true"])))
    assert [c.id for c in shim.stub.List(pb.ListRequest()).containers] == [cid]
    shim.stub.Start(pb.StartRequest(id=cid))
    assert shim.stub.Wait(pb.WaitRequest(id=cid)).exit_code == 0
    # Start again: a new run from the same bundle; the log keeps both runs.
    shim.stub.Start(pb.StartRequest(id=cid))
    assert shim.stub.Wait(pb.WaitRequest(id=cid)).status == "stopped"
    assert shim.output(cid) == b"hi\nhi\n"


def test_bad_requests_leave_nothing(shim: ShimProcess) -> None:
    with pytest.raises(InvalidArgument, match="unable to find user nosuch"):
        shim.create(["true"], user="nosuch")
    with pytest.raises(InvalidArgument):
        shim.create(["true"], cap_add=["CAP_NOPE"])
    with pytest.raises(InvalidArgument):
        shim.create(["true"], runtime="nosuch")
    with pytest.raises(InvalidArgument):
        shim.stub.Create(pb.CreateRequest(id="../x", rootfs=shim.rootfs(),
                                          spec=pb.ContainerSpec(args=["true"])))
    with pytest.raises(NotFound):
        shim.stub.Start(pb.StartRequest(id="a" * 64))
    assert not shim.stub.List(pb.ListRequest()).containers
    assert not list((shim.dir / "root" / "shim" / "containers").iterdir())


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_missing_executable(shim: ShimProcess, runtime: str) -> None:
    with pytest.raises(FailedPrecondition, match="executable file not found"):
        shim.create(["nosuchcmd"], runtime=runtime)
    assert not shim.stub.List(pb.ListRequest()).containers


def test_stop_kills_after_timeout(shim: ShimProcess) -> None:
    cid = shim.create(["sh", "-c", 'trap "" TERM; echo ready; sleep 100'])
    shim.stub.Start(pb.StartRequest(id=cid))
    _wait_output(shim, cid, b"ready")
    status = shim.stub.Stop(pb.StopRequest(id=cid, timeout=1))
    assert status.status == "stopped"
    assert status.exit_code == 137
    with pytest.raises(FailedPrecondition):
        shim.stub.Kill(pb.KillRequest(id=cid, signal="TERM"))


def test_delete_running_needs_force(shim: ShimProcess) -> None:
    cid = shim.create(["sleep", "100"])
    first = shim.stub.Start(pb.StartRequest(id=cid))
    assert first.pid > 0 and not first.was_running
    with pytest.raises(FailedPrecondition):
        shim.stub.Start(pb.StartRequest(id=cid))
    again = shim.stub.Start(pb.StartRequest(id=cid, unless_running=True))
    assert again.was_running and again.pid == 0
    assert shim.stub.State(pb.StateRequest(id=cid)).pid == first.pid  # left as it was
    with pytest.raises(FailedPrecondition):
        shim.stub.Delete(pb.DeleteRequest(id=cid))
    # PID 1 ignores signals it has no handler for: TERM would do nothing to sleep.
    shim.stub.Kill(pb.KillRequest(id=cid, signal="9"))
    assert shim.stub.Wait(pb.WaitRequest(id=cid)).exit_code == 137
    shim.stub.Delete(pb.DeleteRequest(id=cid))
    cid = shim.create(["sleep", "100"])
    shim.stub.Start(pb.StartRequest(id=cid))
    shim.stub.Delete(pb.DeleteRequest(id=cid, force=True))
    assert not shim.stub.List(pb.ListRequest()).containers


def test_logs_follow_until_exit(shim: ShimProcess) -> None:
    cid = shim.create(["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"])
    shim.stub.Start(pb.StartRequest(id=cid))
    got = b"".join(e.data for e in shim.stub.Logs(pb.LogsRequest(id=cid, follow=True)))
    assert got == b"line1\nline2\nline3\n"
    tail = [e.data for e in shim.stub.Logs(pb.LogsRequest(id=cid, tail=1))]
    assert tail == [b"line3\n"]


def test_shim_killed_and_restarted_keeps_containers(shim: ShimProcess) -> None:
    cid = shim.create(["sh", "-c", 'trap "exit 3" TERM; echo up; while :; do sleep 0.1; done'])
    shim.stub.Start(pb.StartRequest(id=cid))
    _wait_output(shim, cid, b"up")
    assert shim.proc is not None
    servers = _fork_servers(shim.proc.pid)
    assert len(servers) == 1  # the monitor came from the warm fork server
    shim.kill9()
    # The fork server goes with its shim (EOF on its socket); the monitor stays.
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in servers):
        assert time.monotonic() < deadline, "fork server outlived the shim"
        time.sleep(0.05)
    shim.start()
    state = shim.stub.State(pb.StateRequest(id=cid))
    assert state.status == "running" and state.pid > 0
    assert shim.output(cid) == b"up\n"
    status = shim.stub.Stop(pb.StopRequest(id=cid, timeout=10))
    assert status.exit_code == 3


def _fork_servers(shim_pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == shim_pid and b"services.shim.forkserver" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_runtimes(shim: ShimProcess) -> None:
    reply = shim.stub.Runtimes(pb.RuntimesRequest())
    names = {r.name: r for r in reply.runtimes}
    assert reply.default == "runc"
    assert "runc" in names["runc"].version and "crun" in names["crun"].version


def _wait_output(shim: ShimProcess, cid: str, text: bytes) -> None:
    for _ in range(500):
        if text in shim.output(cid):
            return
        time.sleep(0.02)
    raise AssertionError(f"no {text!r} in the log of {cid}")
