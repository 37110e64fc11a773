"""statuscache.py and the exit watch it leans on: a cached status is dropped by every
change the cache can know of, and a read that raced a change is not kept."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from services.shim.exits import ExitWatch
from services.shim.status import Status
from services.shim.statuscache import StatusCache
from services.shim.store import ContainerDir

CID = "c" * 64


def _cdir(tmp_path: Path) -> ContainerDir:
    cdir = ContainerDir(tmp_path / CID)
    cdir.path.mkdir()
    return cdir


def test_running_is_kept_while_watched_and_unrecorded(tmp_path: Path) -> None:
    cdir = _cdir(tmp_path)
    watched = {CID}
    cache = StatusCache(lambda cid: cid in watched)
    cache.put(CID, cache.generation(CID), Status(id=CID, status="running", pid=5))
    got = cache.get(cdir)
    assert got is not None and (got.status, got.pid) == ("running", 5)
    cdir.status.write_text("{}")  # the monitor recorded the exit
    assert cache.get(cdir) is None
    cdir.status.unlink()
    watched.clear()  # its monitor exited (or was never watched)
    assert cache.get(cdir) is None


def test_stopped_needs_no_monitor(tmp_path: Path) -> None:
    cdir = _cdir(tmp_path)
    cache = StatusCache(lambda cid: False)
    cache.put(CID, cache.generation(CID), Status(id=CID, status="stopped", exit_code=3))
    got = cache.get(cdir)
    assert got is not None and got.exit_code == 3
    got.exit_code = 9  # a caller's copy: the cache keeps its own
    assert cache.get(cdir).exit_code == 3  # type: ignore[union-attr]


def test_a_read_that_raced_a_change_is_dropped(tmp_path: Path) -> None:
    cdir = _cdir(tmp_path)
    cache = StatusCache(lambda cid: True)
    before = cache.generation(CID)  # a list starts reading ...
    cache.invalidate(CID)  # ... a pause lands meanwhile ...
    cache.put(CID, before, Status(id=CID, status="running"))  # ... its old read
    assert cache.get(cdir) is None
    cache.put(CID, cache.generation(CID), Status(id=CID, status="paused"))
    assert cache.get(cdir).status == "paused"  # type: ignore[union-attr]
    before = cache.generation(CID)
    cache.forget(CID)  # deleted while a read ran
    cache.put(CID, before, Status(id=CID, status="paused"))
    assert cache.get(cdir) is None


def test_exit_watch_tells_a_watched_monitor_from_an_exited_one() -> None:
    seen = threading.Event()
    watch = ExitWatch(lambda cid: seen.set())
    child = subprocess.Popen(["sleep", "1000"])
    try:
        assert not watch.watching(CID)
        watch.watch(CID, os.pidfd_open(child.pid))
        assert watch.watching(CID)
        child.kill()
        child.wait()
        # Exited: false at once, even before the watch's own thread handled it.
        assert not watch.watching(CID)
        assert seen.wait(10)
        watch.watch(CID, -1)  # a later run with no pidfd: never trusted
        assert not watch.watching(CID)
    finally:
        child.kill()
        child.wait()
        watch.close()


def test_watching_all_answers_as_watching_of_each() -> None:
    """`ps` asks the exit watch about every container at once: the same answer."""
    watch = ExitWatch(lambda cid: None)
    children = [subprocess.Popen(["sleep", "1000"]) for _ in range(3)]
    ids = [str(i) * 64 for i in range(4)]  # the last is never watched
    try:
        for cid, child in zip(ids, children, strict=False):
            watch.watch(cid, os.pidfd_open(child.pid))
        children[1].kill()
        children[1].wait()
        assert watch.watching_all(ids) == {cid for cid in ids if watch.watching(cid)} \
            == {ids[0], ids[2]}
        assert watch.watching_all([]) == set()
    finally:
        for child in children:
            child.kill()
            child.wait()
        watch.close()


def test_get_many_is_get_of_each(tmp_path: Path) -> None:
    """Kept, recorded (status.json), unwatched, stopped and unknown, in one call."""
    ids = [c * 64 for c in "abcde"]
    cdirs = [ContainerDir(tmp_path / cid) for cid in ids]
    for cdir in cdirs:
        cdir.path.mkdir()
    watched = {ids[0], ids[1]}
    asked: list[list[str]] = []

    def watching_all(cids: list[str]) -> set[str]:
        asked.append(list(cids))
        return watched & set(cids)

    cache = StatusCache(lambda cid: cid in watched, watching_all)
    for cid, state in zip(ids[:4], ("running", "running", "paused", "stopped"), strict=True):
        cache.put(cid, cache.generation(cid), Status(id=cid, status=state))
    cdirs[1].status.write_text("{}")  # recorded its exit: no longer true
    many = cache.get_many([(c.id, str(c.status)) for c in cdirs])
    assert [s.status if s else None for s in many] == ["running", None, None, "stopped", None]
    assert [s.status if s else None for s in many] == \
        [s.status if s else None for s in (cache.get(c) for c in cdirs)]
    assert asked[0] == ids[:3]  # one question for the three not stopped
