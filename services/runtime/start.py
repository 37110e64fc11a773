"""``start``: release the init blocked on exec.fifo so it execs process.args.

The init keeps its end of the fifo open, close-on-exec, until its execve: EOF on our end
means the user's program has been executed (or the init died), and only then do the
poststart hooks run (runtime-spec: after the user-specified process is executed)."""

from __future__ import annotations

import os
import select

from services.runtime.log import get_logger
from services.runtime.scoped import suppress
from services.runtime.store import Store
from vocab.errors import FailedPrecondition

WAIT_TICKS = 1000  # x 10 ms: how long the init may take to open its end
EXEC_TICKS = 1000  # x 10 ms: how long it may take from our read to its execve


def start(store: Store, cid: str) -> None:
    state = store.load(cid)
    status = store.status(state)
    if status != "created":
        raise FailedPrecondition(f"cannot start container {cid}: it is {status}, not created")
    fifo = store.fifo(cid)
    # Non-blocking open: a blocking one would hang forever if the init died meanwhile.
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FailedPrecondition(f"cannot start container {cid}: already started") from None
    try:
        for _ in range(WAIT_TICKS):
            if _readable(fd, 0.01):
                with suppress(BlockingIOError):
                    byte = os.read(fd, 1)
                    if byte == b"E":  # a startContainer hook failed (init.py)
                        raise FailedPrecondition(_rest(fd) or "startContainer hook failed")
                    if byte:
                        break
            if store.status(state) == "stopped":
                raise FailedPrecondition(f"container {cid} exited before start")
        else:
            raise FailedPrecondition(f"container {cid}: init did not answer start")
        _await_exec(fd)
    finally:
        os.close(fd)
    with suppress(FileNotFoundError):
        os.unlink(fifo)
    get_logger(container=cid).info("started", pid=state.pid)
    recorded = os.path.join(store.dir(cid), "hooks.json")
    if os.path.exists(recorded):
        _poststart(recorded, cid, state.pid, state.bundle)


def _readable(fd: int, seconds: float) -> bool:
    # poll, not select.select: called in the shim's process (the runtime's face), whose
    # fds go past select's 1024 with ~1000 containers (one pidfd per monitor)
    probe = select.poll()
    probe.register(fd, select.POLLIN)
    return bool(probe.poll(int(seconds * 1000)))


def _await_exec(fd: int) -> None:
    """Until EOF: the init's execve closed its end (bounded: a stuck init must not hang us)."""
    for _ in range(EXEC_TICKS):
        _readable(fd, 0.01)
        try:
            if not os.read(fd, 64):
                return
        except BlockingIOError:
            continue


def _rest(fd: int) -> str:
    """What the init wrote after "E" (it wrote it all before exiting)."""
    chunks = []
    for _ in range(100):
        _readable(fd, 0.05)
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _poststart(recorded: str, cid: str, pid: int, bundle: str) -> None:
    import json

    from services.runtime import hooks

    with open(recorded) as f:
        config = json.loads(f.read())
    log = get_logger(container=cid)
    # runtime-spec: a failed poststart hook is a warning; the rest still run and the
    # container keeps running.
    hooks.run_all(hooks.of(config, "poststart"),
                  hooks.state(config, cid, "running", pid, bundle), bundle,
                  lambda error: log.warning("poststart hook failed", error=error))
