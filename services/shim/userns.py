"""A container's user namespace, made by the shim and pinned at <container dir>/userns.

The shim makes it (rather than the runtime) so that the network namespace it wires can
belong to it: the container's root then owns its network (sysfs, raw sockets, sysctls),
and every runtime, and `exec` under runc and crun, joins both by path. An fd of one per
distinct maps is also kept for idmapping image layers (idmap.py).

Processes, not fork(): grpc's fork handlers start threads in a forked child, and a threaded
process may not unshare(CLONE_NEWUSER). util-linux's `unshare --user cat` holds a new
namespace until its stdin closes; we write its maps from outside (any range: we are root).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator

from services.runtime.api import linux
from services.shim import pinned
from vocab.errors import FailedPrecondition

Range = tuple[int, int, int]  # (container ID, host ID, size)
Maps = tuple[tuple[Range, ...], tuple[Range, ...]]  # (uid ranges, gid ranges)

_fds: dict[Maps, int] = {}
_lock = threading.Lock()


def to_host(ranges: tuple[Range, ...] | list[Range], container_id: int) -> int | None:
    for inner, outer, size in ranges:
        if inner <= container_id < inner + size:
            return outer + container_id - inner
    return None


@contextlib.contextmanager
def _holder(argv: list[str], kind: str) -> Iterator[subprocess.Popen[bytes]]:
    """A process in a new ``kind`` namespace ("user", "net"), until the block ends."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        own = os.readlink(f"/proc/self/ns/{kind}")
        deadline = time.monotonic() + 5
        while True:
            with contextlib.suppress(FileNotFoundError):
                if os.readlink(f"/proc/{proc.pid}/ns/{kind}") != own:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = (proc.stderr.read() if proc.poll() is not None and proc.stderr else b"")
                raise FailedPrecondition(f"cannot make a {kind} namespace: "
                                         f"{err.decode(errors='replace').strip() or 'failed'}")
            time.sleep(0.0005)
        yield proc
    finally:
        proc.kill()
        proc.communicate()


def _write_maps(pid: int, maps: Maps) -> None:
    for path, ranges in (("uid_map", maps[0]), ("gid_map", maps[1])):
        with open(f"/proc/{pid}/{path}", "w") as f:
            f.write("".join(f"{i} {o} {n}\n" for i, o, n in ranges))


def fd(maps: Maps) -> int:
    """An fd of a user namespace with these maps, made once per distinct maps and kept."""
    with _lock:
        if maps not in _fds:
            try:
                with _holder(["unshare", "--user", "--", "cat"], "user") as proc:
                    _write_maps(proc.pid, maps)
                    _fds[maps] = os.open(f"/proc/{proc.pid}/ns/user",
                                         os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise FailedPrecondition(f"cannot make a user namespace: {exc.strerror}") \
                    from None
        return _fds[maps]


def pin(path: str, maps: Maps) -> None:
    """A new user namespace with these maps, pinned at ``path`` (nothing if it is)."""
    if is_pinned(path):
        return
    with open(path, "a"):
        pass
    try:
        with _holder(["unshare", "--user", "--", "cat"], "user") as proc:
            _write_maps(proc.pid, maps)
            _bind(f"/proc/{proc.pid}/ns/user", path)
    except BaseException:
        unpin(path)
        raise


def pin_netns(path: str, userns: str) -> None:
    """A new network namespace owned by the user namespace pinned at ``userns``."""
    with open(path, "a"):
        pass
    try:
        with _holder(["nsenter", f"--user={userns}", "--", "unshare", "--net", "--", "cat"],
                     "net") as proc:
            _bind(f"/proc/{proc.pid}/ns/net", path)
    except BaseException:
        unpin(path)
        raise


def _bind(source: str, target: str) -> None:
    try:
        linux.mount(source, target, None, linux.MS_BIND)
    except OSError as exc:
        raise FailedPrecondition(f"cannot pin namespace at {target}: {exc.strerror}") from None


# A pinned namespace file is one mount over a file, whatever the namespace's kind.
is_pinned = pinned.is_pinned
unpin = pinned.unpin
