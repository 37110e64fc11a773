"""system check across the gateway's records, the shim and the image store (fakes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2

from services.gateway import build as buildmod
from services.gateway import engine as enginemod
from services.gateway.engine import Engine
from services.gateway.records import Records
from tests.unit.gateway.fakes import FakeImages, FakeShim
from tests.unit.gateway.test_engine import eventually, req
from vocab.errors import FailedPrecondition, Unavailable


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Records(tmp_path / "gw"), FakeImages(), FakeShim())
    yield eng
    eng.records.close()


def problems(engine: Engine, repair: bool = False) -> dict[str, str]:
    return {p.subject: p.message for p in engine.system_check(repair).problems}


def test_whole_containers_are_no_problem(engine: Engine) -> None:
    engine.create(req(cmd=["true"]))
    assert problems(engine) == {}
    assert engine.system_check().containers == 1


def test_each_partial_container_is_named_and_repaired(engine: Engine) -> None:
    hidden = engine.create(req(cmd=["true"])).id
    lost = engine.create(req(cmd=["true"])).id
    orphan_rootfs = "e" * 64
    engine.records.delete(hidden)
    del engine.shim.containers[lost]
    engine.images.rootfs.discard(lost)
    engine.images.rootfs.add(orphan_rootfs)
    found = problems(engine)
    assert found[hidden].startswith("hidden: known to the shim and the image store")
    assert found[lost].startswith("lost: the gateway has its record")
    assert found[orphan_rootfs].startswith("hidden: known to the image store")
    assert all(p.repaired for p in engine.system_check(repair=True).problems)
    assert problems(engine) == {}
    assert engine.shim.containers == {} and engine.images.rootfs == set()
    assert engine.records.all(include_unready=True) == []


def test_creates_in_flight_are_not_problems(engine: Engine) -> None:
    rec_id = engine.create(req(cmd=["true"])).id
    engine.records.delete(rec_id)  # as if the create were still before its insert
    with engine.busy.working(rec_id):
        assert problems(engine) == {}
        assert problems(engine, repair=True) == {}
    assert rec_id in problems(engine)


def test_a_create_whose_undo_fails_is_undone_later(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The shim was killed in the create: the record stays (not ready, so not listed)
    until the shim can say the container is gone, then goes."""
    monkeypatch.setattr(enginemod, "FINISH_RETRY", (0.01, 0.02))
    engine.shim.fail_create = Unavailable("shim unavailable")
    delete = engine.shim.Delete
    engine.shim.Delete = lambda r: (_ for _ in ()).throw(Unavailable("shim unavailable"))
    with pytest.raises(Unavailable):
        engine.create(req(name="half", cmd=["true"]))
    [rec] = engine.records.all(include_unready=True)
    assert not rec.ready and problems(engine)[rec.id].startswith("a create that did not")
    engine.shim.Delete = delete
    eventually(lambda: engine.records.all(include_unready=True) == [])
    assert engine.images.rootfs == set()


def test_a_removal_cut_short_is_finished(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The image store was killed in an rm, after the shim deleted the container: the
    record is marked removing (not listed), and the removal finishes once it is back."""
    monkeypatch.setattr(enginemod, "FINISH_RETRY", (0.01, 0.02))
    cid = engine.create(req(name="web", cmd=["true"])).id
    remove_rootfs = engine.images.RemoveRootfs
    engine.images.RemoveRootfs = lambda r: (_ for _ in ()).throw(Unavailable("down"))
    with pytest.raises(Unavailable):
        engine.remove("web", force=True)
    assert cid not in engine.shim.containers and engine.list(all=True).containers == []
    assert problems(engine)[cid] == "a removal that did not finish"
    engine.images.RemoveRootfs = remove_rootfs
    eventually(lambda: engine.records.all(include_unready=True) == [])
    assert engine.images.rootfs == set() and problems(engine) == {}


def test_restore_finishes_a_removal(tmp_path: Path) -> None:
    images, runtime = FakeImages(), FakeShim()
    eng = Engine(Records(tmp_path / "gw"), images, runtime)
    cid = eng.create(req(cmd=["true"])).id
    del runtime.containers[cid]  # the shim deleted it, then the gateway was killed
    eng.records.mark_removing(cid, remove_volumes=False)
    eng.records.close()
    again = Engine(Records(tmp_path / "gw"), images, runtime)
    try:
        again.restore()
        assert again.records.all(include_unready=True) == [] and images.rootfs == set()
    finally:
        again.records.close()


def test_a_refused_removal_changes_nothing(engine: Engine) -> None:
    cid = engine.create(req(name="web", cmd=["sleep"])).id
    engine.start("web")
    engine.shim.Delete = lambda r: (_ for _ in ()).throw(
        FailedPrecondition("did not stop after SIGKILL"))
    with pytest.raises(FailedPrecondition):
        engine.remove("web", force=True)
    assert [c.id for c in engine.list(all=True).containers] == [cid]
    assert problems(engine) == {}


def test_a_container_a_commit_froze_is_thawed_by_the_next_start(tmp_path: Path) -> None:
    """The gateway was killed while a commit held the container paused."""
    images, runtime = FakeImages(), FakeShim()
    eng = Engine(Records(tmp_path / "gw"), images, runtime)
    cid = eng.create(req(cmd=["sleep"])).id
    eng.start(cid)
    eng.records.hold_pause(cid)  # what commit records before it pauses
    runtime.Pause(shim_pb2.PauseRequest(id=cid))
    eng.records.close()
    again = Engine(Records(tmp_path / "gw"), images, runtime)
    try:
        again.restore()
        assert runtime.containers[cid]["status"] == "running"
        assert again.records.held_pauses() == []
    finally:
        again.records.close()


def test_a_commit_whose_resume_fails_resumes_later(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(enginemod, "FINISH_RETRY", (0.01, 0.02))
    monkeypatch.setattr(buildmod, "commit_container", lambda *a: "committed")
    cid = engine.create(req(cmd=["sleep"])).id
    engine.start(cid)
    resume = engine.shim.Resume
    engine.shim.Resume = lambda r: (_ for _ in ()).throw(Unavailable("shim down"))
    assert engine.commit_container(engine_pb2.CommitContainerRequest(container=cid)) \
        == "committed"
    assert engine.shim.containers[cid]["status"] == "paused"
    engine.shim.Resume = resume
    eventually(lambda: engine.shim.containers[cid]["status"] == "running")
    assert engine.records.held_pauses() == []
