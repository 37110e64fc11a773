"""IO and exec of the containers: their logs (followed until the monitor exits), stdin,
exec'd processes (exec.py), stats and processes. The lifecycle (shim.py) says which
containers exist and in what state."""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from services.core.logging import get_logger
from services.shim import logs, stats
from services.shim import stdin as stdinmod
from services.shim.exec import ExecRequest, ExecRun, Exit, Output
from services.shim.meta import Meta
from services.shim.monitors import Monitors
from services.shim.runtimes import Runtime
from services.shim.status import Status
from services.shim.store import ContainerDir
from services.shim.waitfd import readable
from vocab.errors import FailedPrecondition


class Containers(Protocol):
    """What IO needs of the lifecycle."""

    monitors: Monitors

    def existing(self, cid: str) -> ContainerDir: ...

    def state(self, cid: str) -> Status: ...

    def list(self) -> builtins.list[Status]: ...

    def runtime_of(self, cdir: ContainerDir) -> Runtime: ...


class ContainerIO:
    def __init__(self, containers: Containers, run_dir: str) -> None:
        self.containers = containers
        self.monitors = containers.monitors
        self.run_dir = run_dir

    def _follow(self, cdir: ContainerDir, *, tail: int, since: str, streams: set[str] | None,
                stopped: Callable[[], bool], cancelled: Callable[[], bool],
                ) -> Iterator[logs.Entry]:
        """follow_log that wakes as soon as the monitor exits (run --rm ends sooner)."""
        exit_fd = self.monitors.pidfd(cdir)

        def pause(seconds: float) -> None:
            if exit_fd < 0:
                time.sleep(seconds)
            else:
                readable(exit_fd, seconds)

        try:
            yield from logs.follow_log(str(cdir.log), tail=tail, since=since, streams=streams,
                                       follow=True, stopped=stopped, cancelled=cancelled,
                                       pause=pause)
        finally:
            if exit_fd >= 0:
                os.close(exit_fd)

    def logs(self, cid: str, *, follow: bool = False, tail: int = 0, since: str = "",
             stdout: bool = False, stderr: bool = False,
             cancelled: Callable[[], bool] = lambda: False) -> Iterator[logs.Entry]:
        cdir = self.containers.existing(cid)
        streams = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on} or None

        def stopped() -> bool:
            return self.monitors.stopped(cdir)

        if since:
            logs.parse_time(since)  # bad input fails before the stream starts
        if not follow:
            return logs.follow_log(str(cdir.log), tail=tail, since=since, streams=streams,
                                   stopped=stopped, cancelled=cancelled)
        return self._follow(cdir, tail=tail, since=since, streams=streams, stopped=stopped,
                            cancelled=cancelled)

    def stats(self, ids: Sequence[str]) -> builtins.list[tuple[str, stats.Counters]]:
        """Counters of the given containers (every running one when none are named);
        stopped ones are skipped, unknown ones are NotFound."""
        # Every container: the statuses `ps` reads (cached while true, statuscache.py),
        # which carry the cgroup path; no meta.json nor status files per container.
        # Named ones are read afresh, as every verb on one container is.
        current = [self.containers.state(cid) for cid in ids] if ids \
            else self.containers.list()
        running = [s for s in current if s.status in ("running", "paused")]
        counters = stats.read_many([(s.cgroups_path, s.pid) for s in running])
        return [(s.id, c) for s, c in zip(running, counters, strict=True)]

    def top(self, cid: str, ps_args: str = "") -> tuple[builtins.list[str],
                                                          builtins.list[builtins.list[str]]]:
        cdir = self.containers.existing(cid)
        if self.containers.state(cid).status not in ("running", "paused"):
            raise FailedPrecondition(f"container {cid} is not running")
        return stats.processes(_cgroups_path(cdir), ps_args)

    def exec(self, cid: str, req: ExecRequest,
             stdin: Iterator[bytes | tuple[int, int] | None],
             cancelled: Callable[[], bool] = lambda: False) -> Iterator[Output | Exit]:
        """Run ``req`` in the running container ``cid`` (services/shim/exec.py)."""
        cdir = self.containers.existing(cid)
        current = self.containers.state(cid).status
        if current != "running":
            raise FailedPrecondition(f"container {cid} is not running" if current != "paused"
                                     else f"container {cid} is paused, unpause it first")
        run = ExecRun(cdir, self.containers.runtime_of(cdir), req, self.run_dir)
        run.start()
        get_logger(container=cid[:12]).info("exec", args=req.args[:1], detach=req.detach)
        if req.detach:
            yield run.detached()
            return
        run.feed(stdin)
        finished = False
        try:
            for event in run.events(cancelled):
                finished = finished or isinstance(event, Exit)
                yield event
        finally:
            if not finished:
                run.kill()  # the client went away
            run.cleanup()

    def stdin_socket(self, cid: str) -> str:
        return stdinmod.socket_path(self.run_dir, cid)

    def write_stdin(self, cid: str, chunks: Iterable[bytes | tuple[int, int]],
                    eof: Callable[[], bool] = lambda: True) -> None:
        """Copy ``chunks`` into the container's stdin; at their end, EOF if ``eof()``
        (the client closed its stdin), else a detach (the stdin stays open)."""
        cdir = self.containers.existing(cid)
        meta = Meta.read(cdir) or Meta()
        if not meta.stdin and not meta.terminal:
            raise FailedPrecondition(f"the stdin of container {cid} is not open "
                                     "(create it with -i)")
        try:
            stdinmod.send(self.stdin_socket(cid), chunks, eof)
        except (FileNotFoundError, ConnectionRefusedError):
            raise FailedPrecondition(f"container {cid} is not running") from None
        except BrokenPipeError:
            pass  # the container closed its stdin or exited: the rest is dropped


def _cgroups_path(cdir: ContainerDir) -> str:
    meta = Meta.read(cdir)
    return meta.cgroups_path if meta else ""
