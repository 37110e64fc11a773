"""Notice that a container's run ended, without a thread per container.

The monitor of a run exits right after recording the container's exit status, so the
shim sleeps on the monitors' pidfds: one thread, one epoll set. ``on_exit(cid)`` runs on a
short-lived thread of its own per exit (it takes the container's lock, which a `stop` may
hold for its whole timeout), so one slow container never delays another's.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Iterable

from services.core.logging import get_logger


class ExitWatch:
    def __init__(self, on_exit: Callable[[str], None]) -> None:
        self.on_exit = on_exit
        self.log = get_logger(component="exits")
        self._epoll = select.epoll()
        self._guard = threading.Lock()
        self._fds: dict[int, str] = {}
        # cid -> the pidfd of its latest run's monitor, until it fires: what the status cache
        # trusts (an older run's fd firing late must not count for the new run)
        self._latest: dict[str, int] = {}
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="exit-watch", daemon=True)
        self._thread.start()

    def watch(self, cid: str, pidfd: int) -> None:
        """Call on_exit(cid) once the process behind ``pidfd`` has exited; the fd is ours
        from now on. A negative fd (no monitor, no pidfd support) watches nothing."""
        if pidfd < 0:
            with self._guard:
                self._latest.pop(cid, None)  # this run is not watched
            return
        with self._guard:
            if self._closed.is_set():
                os.close(pidfd)
                return
            self._fds[pidfd] = cid
            self._latest[cid] = pidfd
            self._epoll.register(pidfd, select.EPOLLIN)

    def watching(self, cid: str) -> bool:
        """Whether the monitor of cid's latest watched run still lives: its pidfd is
        asked (one poll, no wait), so an exit this thread has not handled yet counts."""
        with self._guard:  # the loop closes fds under it: this one stays open meanwhile
            fd = self._latest.get(cid)
            if fd is None:
                return False
            probe = select.poll()
            probe.register(fd, select.POLLIN)
            return not probe.poll(0)

    def watching_all(self, cids: Iterable[str]) -> set[str]:
        """The ones of ``cids`` that ``watching`` is true of, with one poll over all their
        pidfds (`ps` of 1000 containers paid a poll object and a syscall for each)."""
        with self._guard:
            fds = {fd: cid for cid in cids if (fd := self._latest.get(cid)) is not None}
            if not fds:
                return set()
            probe = select.poll()
            for fd in fds:
                probe.register(fd, select.POLLIN)
            exited = {fd for fd, _ in probe.poll(0)}
        return {cid for fd, cid in fds.items() if fd not in exited}

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                # woken at least every second to notice close()
                events = self._epoll.poll(1.0)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return  # closed under us
            for fd, _ in events:
                with self._guard:
                    cid = self._fds.pop(fd, None)
                    if cid is None:
                        continue
                    if self._latest.get(cid) == fd:
                        del self._latest[cid]
                    with contextlib.suppress(OSError):
                        self._epoll.unregister(fd)
                    os.close(fd)
                threading.Thread(target=self._exited, args=(cid,), daemon=True,
                                 name=f"exited-{cid[:12]}").start()

    def _exited(self, cid: str) -> None:
        try:
            self.on_exit(cid)
        except Exception as exc:  # noqa: BLE001 - a thread of its own: log, never die loud
            self.log.warning("handling an exit failed", container=cid[:12], error=str(exc))

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        with self._guard:
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()
            self._latest.clear()
            self._epoll.close()
