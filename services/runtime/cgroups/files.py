"""cgroup file helpers shared by the v1 and v2 implementations (and the package face):
writes with the kernel's refusals named, pid lists, polls, rmdir retries, and the
migration primer."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vocab.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from threading import Thread

ROOT = Path("/sys/fs/cgroup")


def prime_migration(root: Path = ROOT) -> Thread | None:
    """Start the grace period that the container's cgroup join will wait for, now.

    Every cgroup migration takes one global lock, and its first writer after a quiet spell
    waits for an RCU grace period (5-15 ms here); writers that come while that wait is on,
    or within about one more grace period, do not wait again. Writing our own pid into the
    cgroup we are already in moves nothing but starts the wait: on a thread once the
    container's cgroup directories exist (mkdir queues behind a pending migration), it
    passes while create writes the limits and the init sets up, and the init's real join
    finds it over. Best effort: with no cgroup file we may write, nothing is primed."""
    procs = own_procs(root)
    if procs is None:
        return None
    import threading  # loaded already where it matters (the fork server)

    thread = threading.Thread(target=_rewrite_pid, args=(procs,), name="cgroup-prime",
                              daemon=True)
    thread.start()
    return thread


def own_procs(root: Path = ROOT) -> Path | None:
    """own_procs_file, looked up once per process (and inherited by forks: the fork
    server looks it up for its monitors). Reading /proc/self/cgroup takes the lock that
    a pending migration holds: a second prime would wait for the first one's grace period."""
    if root not in _OWN:
        _OWN[root] = own_procs_file(root)
    return _OWN[root]


_OWN: dict[Path, Path | None] = {}


def own_procs_file(root: Path = ROOT, table: str | None = None) -> Path | None:
    """The cgroup.procs of a cgroup this process is in, on any hierarchy (the lock that a
    migration takes is one for all of them). ``table``: /proc/self/cgroup's text."""
    if table is None:
        try:
            with open("/proc/self/cgroup") as f:
                table = f.read()
        except OSError:
            return None
    for line in table.splitlines():
        _id, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        bases = [root, root / "unified"] if not ctrls else \
            [root / name.removeprefix("name=") for name in ctrls.split(",")]
        for base in bases:
            procs = base / path.lstrip("/") / "cgroup.procs"
            if procs.exists():
                return procs
    return None


def _rewrite_pid(procs: Path) -> None:
    try:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # an optimisation only


def write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def write_limit(path: Path, value: str) -> None:
    """Write a resource limit. The kernel checks the value on write, and its error
    surfaces at close without a file name: say which limit and value it refused."""
    try:
        write(path, value)
    except OSError as exc:
        kind = InvalidArgument if exc.errno in (errno.EINVAL, errno.ERANGE) \
            else FailedPrecondition
        raise kind(f"cgroup limit {path.name} = {value}: the kernel refused it: "
                   f"{exc.strerror or exc}") from None


def read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
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


def rmdir_retry(path: Path, tries: int = 50) -> None:
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
