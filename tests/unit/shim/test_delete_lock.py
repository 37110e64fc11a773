"""ContainerDir.after_delete: the shim waits for a monitor's runtime delete, within reason.

No clock in the assertions: the holder keeps the lock until the test lets it go, and the
test lets it go only once the kernel shows the shim's flock blocked behind it
(/proc/locks); the holder marks the end of its delete before it releases the lock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from services.shim.store import ContainerDir

# The holder is a fresh interpreter, not an os.fork of this one: gRPC's fork handlers in
# the test process (other tests' channels) crashed such a child now and then (SIGSEGV).
HOLDER = """
import fcntl, os, sys
lock, done, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, str(os.getpid()).encode(), 0)
os.write(ready, b"1")
os.read(go, 1)  # EOF too: the test went away
with open(done, "w") as f:
    f.write("deleted")
"""


def _holder(cdir: ContainerDir, done: Path) -> tuple[int, int]:
    """A process holding the delete lock (as the monitor's delete child does) until a byte
    arrives on the returned fd; it then writes ``done`` and exits, releasing the lock."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-S", "-c", HOLDER, str(cdir.delete_lock),
                             str(done), str(ready_w), str(go_r)], pass_fds=(ready_w, go_r))
    os.close(ready_w)
    os.close(go_r)
    assert os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    return proc.pid, go_w


def _flock_blocked_on(path: Path, timeout: float = 30) -> None:
    """Wait until some flock request on ``path`` is blocked (a "->" line in /proc/locks)."""
    st = path.stat()
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/locks") as f:
            if any("->" in line and "FLOCK" in line and inode in line for line in f):
                return
        time.sleep(0.01)
    raise AssertionError(f"no blocked flock on {path} within {timeout}s")


def _reap(pid: int, go: int) -> int:
    """Let the holder go (if still there) and collect its wait status."""
    os.close(go)
    return os.waitpid(pid, 0)[1]


def test_waits_for_a_delete_that_finishes(tmp_path: Path) -> None:
    cdir = ContainerDir(tmp_path)
    done = tmp_path / "done"
    pid, go = _holder(cdir, done)
    seen: list[bool] = []

    def shim() -> None:
        with cdir.after_delete(patience=60):
            seen.append(done.exists())

    waiter = threading.Thread(target=shim, daemon=True)
    try:
        waiter.start()
        _flock_blocked_on(cdir.delete_lock)  # the shim waits behind the holder
        assert seen == []
        os.write(go, b"1")
    finally:
        status = _reap(pid, go)
        waiter.join(60)
    assert seen == [True]  # it went on only after the delete had finished
    assert os.WIFEXITED(status)  # finished, not killed


def test_kills_a_delete_that_hangs(tmp_path: Path) -> None:
    cdir = ContainerDir(tmp_path)
    pid, go = _holder(cdir, tmp_path / "done")  # not told to go while the shim waits
    try:
        with cdir.after_delete(patience=0.2):
            pass
    finally:
        status = _reap(pid, go)  # a holder still alive here would now finish normally
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not (tmp_path / "done").exists()


def test_no_container_dir_means_nothing_to_wait_for(tmp_path: Path) -> None:
    with ContainerDir(tmp_path / "gone").after_delete():
        pass
