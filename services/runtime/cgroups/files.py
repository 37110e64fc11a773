"""cgroup file helpers shared by the v1 and v2 implementations (and the package face):
writes with the kernel's refusals named, pid lists, polls, rmdir retries, and the
migration primer."""

from __future__ import annotations

import _thread
import errno
import os
import time

from vocab.errors import FailedPrecondition, InvalidArgument

# Paths are strings, and nothing from pathlib, typing or threading is imported at run
# time: this is on the path of every create (tests/unit/runtime/test_lean.py).
TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from typing import Any

    Primer = _thread.LockType  # held until the primed write is over

ROOT = "/sys/fs/cgroup"


def prime_migration(root: str | os.PathLike[str] = ROOT) -> Primer | None:
    """Start the grace period that the container's cgroup join will wait for, now.

    Every cgroup migration takes one global lock, and its first writer after a quiet spell
    waits for an RCU grace period (5-15 ms here); writers that come while that wait is on,
    or within about one more grace period, do not wait again. Writing our own pid into the
    cgroup we are already in moves nothing but starts the wait: on a thread once the
    container's cgroup directories exist (mkdir queues behind a pending migration), it
    passes while create writes the limits and the init sets up, and the init's real join
    finds it over. Best effort: with no cgroup file we may write, nothing is primed.
    Returns a lock held until the write is over (a bare thread: threading's import costs
    every create ~3 ms, and nothing waits for the primer but tests)."""
    procs = own_procs(root)
    if procs is None:
        return None
    done = _thread.allocate_lock()
    done.acquire()
    _thread.start_new_thread(_rewrite_pid, (procs, done))
    return done


def own_procs(root: str | os.PathLike[str] = ROOT) -> str | None:
    """own_procs_file, looked up once per process (and inherited by forks: the fork
    server looks it up for its monitors). Reading /proc/self/cgroup takes the lock that
    a pending migration holds: a second prime would wait for the first one's grace period."""
    key = os.fspath(root)
    if key not in _OWN:
        _OWN[key] = own_procs_file(key)
    return _OWN[key]


_OWN: dict[str, str | None] = {}


def own_procs_file(root: str | os.PathLike[str] = ROOT, table: str | None = None) -> str | None:
    """The cgroup.procs of a cgroup this process is in, on any hierarchy (the lock that a
    migration takes is one for all of them). ``table``: /proc/self/cgroup's text."""
    if table is None:
        try:
            with open("/proc/self/cgroup") as f:
                table = f.read()
        except OSError:
            return None
    top = os.fspath(root)
    for line in table.splitlines():
        _id, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        bases = [top, os.path.join(top, "unified")] if not ctrls else \
            [os.path.join(top, name.removeprefix("name=")) for name in ctrls.split(",")]
        for base in bases:
            procs = os.path.join(base, path.lstrip("/"), "cgroup.procs")
            if os.path.exists(procs):
                return procs
    return None


def _rewrite_pid(procs: str, done: Primer) -> None:
    try:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # an optimisation only
    finally:
        done.release()


def mkdir(path: str) -> None:
    """Path.mkdir(exist_ok=True): an existing directory is fine, anything else raises."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def write_limit(path: str, value: str) -> None:
    """Write a resource limit. The kernel checks the value on write, and its error
    surfaces at close without a file name: say which limit and value it refused."""
    try:
        write(path, value)
    except OSError as exc:
        kind = InvalidArgument if exc.errno in (errno.EINVAL, errno.ERANGE) \
            else FailedPrecondition
        raise kind(f"cgroup limit {os.path.basename(path)} = {value}: the kernel refused it: "
                   f"{exc.strerror or exc}") from None


def read_pids(path: str) -> list[int]:
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def wait_for(read: Any, wanted: str, what: str, timeout: float = 10.0) -> None:
    """Poll ``read()`` until it returns ``wanted`` (freezing completes asynchronously)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while read() != wanted:
        if time.monotonic() > deadline:
            raise FailedPrecondition(f"cgroup did not become {what} within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def rmdir_retry(path: str, tries: int = 50) -> None:
    """rmdir a cgroup dir: exiting tasks may linger a moment (EBUSY)."""
    for _ in range(tries):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != 16:  # EBUSY
                raise
            time.sleep(0.02)
    os.rmdir(path)
