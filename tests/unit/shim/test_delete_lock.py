"""ContainerDir.after_delete: the shim waits for a monitor's runtime delete, within reason."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

from services.shim.store import ContainerDir


def _holder(cdir: ContainerDir, seconds: float) -> int:
    """A process that holds the delete lock (as the monitor's delete child does)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(cdir.delete_lock, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            os.write(write, b"1")
            time.sleep(seconds)
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    return pid


def test_waits_for_a_delete_that_finishes(tmp_path: Path) -> None:
    cdir = ContainerDir(tmp_path)
    pid = _holder(cdir, 0.3)
    start = time.monotonic()
    with cdir.after_delete(patience=10):
        waited = time.monotonic() - start
    os.waitpid(pid, 0)
    assert waited > 0.1  # it did wait: the holder had the lock


def test_kills_a_delete_that_hangs(tmp_path: Path) -> None:
    cdir = ContainerDir(tmp_path)
    pid = _holder(cdir, 60)
    with cdir.after_delete(patience=0.2):
        pass  # the lock is ours: the holder is gone
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_no_container_dir_means_nothing_to_wait_for(tmp_path: Path) -> None:
    with ContainerDir(tmp_path / "gone").after_delete():
        pass
