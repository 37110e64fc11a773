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
