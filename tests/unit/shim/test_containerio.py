"""containerio.py against a stand-in lifecycle: what it refuses before touching a
container (the integration tests run the real thing)."""

from __future__ import annotations

import builtins
import tempfile
from pathlib import Path

import pytest

from services.core.config import Config
from services.shim.containerio import ContainerIO
from services.shim.exec import ExecRequest
from services.shim.meta import Meta
from services.shim.monitors import Monitors
from services.shim.runtimes import Runtime
from services.shim.status import Status
from services.shim.store import ContainerDir
from vocab.errors import FailedPrecondition, InvalidArgument

CID = "d" * 64


class _Lifecycle:
    def __init__(self, tmp: Path, status: str, meta: Meta) -> None:
        self.monitors = Monitors(Config(root=tmp, run=tmp / "run"))
        self.cdir = ContainerDir(tmp / CID)
        self.cdir.path.mkdir()
        meta.write(self.cdir)
        self.status = status

    def existing(self, cid: str) -> ContainerDir:
        return self.cdir

    def state(self, cid: str) -> Status:
        return Status(id=cid, status=self.status)

    def list(self) -> builtins.list[Status]:
        return [self.state(CID)]

    def runtime_of(self, cdir: ContainerDir) -> Runtime:
        raise AssertionError("no runtime is asked for")


def test_stdin_of_a_container_made_without_it_is_refused(tmp_path: Path) -> None:
    io = ContainerIO(_Lifecycle(tmp_path, "running", Meta()), str(tmp_path / "run"))
    with pytest.raises(FailedPrecondition, match="create it with -i"):
        io.write_stdin(CID, [b"x"])


def test_stdin_of_a_stopped_container_is_not_running(tmp_path: Path) -> None:
    # A short run dir: the socket path must fit a sockaddr_un (108 bytes), which this
    # test's tmp_path (its long name, a session number) may not leave room for.
    with tempfile.TemporaryDirectory(prefix="io", dir="/tmp") as run:
        io = ContainerIO(_Lifecycle(tmp_path, "stopped", Meta(stdin={"once": False})), run)
        with pytest.raises(FailedPrecondition, match="is not running"):
            io.write_stdin(CID, [b"x"])  # no monitor listens on its socket


@pytest.mark.parametrize(("status", "message"), [("paused", "unpause it first"),
                                                 ("stopped", "is not running")])
def test_exec_and_top_need_it_running(tmp_path: Path, status: str, message: str) -> None:
    io = ContainerIO(_Lifecycle(tmp_path, status, Meta()), str(tmp_path / "run"))
    with pytest.raises(FailedPrecondition, match=message):
        next(io.exec(CID, ExecRequest(args=["true"]), iter([])))
    if status == "stopped":
        with pytest.raises(FailedPrecondition, match="is not running"):
            io.top(CID)
        assert io.stats([CID]) == []  # stopped ones are skipped


def test_a_bad_since_fails_before_the_stream(tmp_path: Path) -> None:
    io = ContainerIO(_Lifecycle(tmp_path, "running", Meta()), str(tmp_path / "run"))
    with pytest.raises(InvalidArgument):
        io.logs(CID, since="yesterday-ish")


def test_stats_of_all_equals_stats_of_each(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`stats` without names reads the cgroups the statuses name (the ones `ps` reads,
    cached), with no meta.json per container: the same counters as naming each one."""
    from services.shim import stats
    from tests.unit.shim.test_stats import _v1_cgroup

    cgroups = tmp_path / "cgroup"
    monkeypatch.setattr(stats, "ROOT", cgroups)
    ids = [c * 64 for c in "abc"]
    for i, cid in enumerate(ids):
        _v1_cgroup(cgroups, f"m/{cid}", usage=4096 * (i + 1), pids=i + 1)
    running = {cid: Status(id=cid, status="running" if cid != ids[2] else "stopped",
                           cgroups_path=f"/m/{cid}") for cid in ids}
    lifecycle = _Lifecycle(tmp_path, "running", Meta())  # its meta.json names no cgroup
    lifecycle.state = running.__getitem__  # type: ignore[method-assign,assignment]
    lifecycle.list = lambda: list(running.values())  # type: ignore[method-assign]
    io = ContainerIO(lifecycle, str(tmp_path / "run"))
    every = {cid: (c.memory_usage, c.pids) for cid, c in io.stats([])}
    each = {cid: (c.memory_usage, c.pids) for one in ids for cid, c in io.stats([one])}
    assert every == each == {ids[0]: (4096, 1), ids[1]: (8192, 2)}  # the stopped one: none
