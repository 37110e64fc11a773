"""The last status `list` read of each container, kept while nothing can have changed it.

Reading a status costs ~7 files (meta, started, status, the monitor's pid and start time,
the init's pid, the freezer); `ps` over hundreds of containers paid that for each. A
cached status stays true until one of two kinds of change:

- the shim's own verbs (create, start, a restart, pause, resume, kill, a meta write,
  delete) call ``invalidate`` once their change is on disk;
- the run ends on its own (an exit, a kill -9 behind the shim's back, an OOM, the monitor
  killed): the monitor writes status.json before it exits, and the exit watch's pidfd
  fires when it is gone. So a status that is not "stopped" is trusted only while
  status.json is absent and the exit watch still waits on that run's monitor (one stat,
  one dict lookup); a run whose monitor is not watched (no pidfd) is always read afresh.

A read that raced an invalidation is not kept: ``put`` takes the generation seen before
the read, and drops the status if the container changed since. The cache lives in the
shim's memory only, so a restarted shim starts empty (live restore reads every dir).
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
from collections.abc import Callable

from services.shim.status import Status
from services.shim.store import ContainerDir


class StatusCache:
    def __init__(self, watching: Callable[[str], bool]) -> None:
        self._watching = watching  # does the exit watch still wait on cid's monitor?
        self._guard = threading.Lock()
        self._entries: dict[str, Status] = {}
        self._gens: dict[str, int] = {}
        self._counter = itertools.count(1)  # never reused: a deleted id's reader can't match

    def generation(self, cid: str) -> int:
        """Take before reading a status; hand to ``put`` with what was read."""
        with self._guard:
            return self._gens.setdefault(cid, next(self._counter))

    def put(self, cid: str, generation: int, status: Status) -> None:
        with self._guard:
            if self._gens.get(cid) == generation:
                self._entries[cid] = copy.copy(status)

    def invalidate(self, cid: str) -> None:
        """After a change to cid's status is on disk (or it was deleted)."""
        with self._guard:
            self._entries.pop(cid, None)
            self._gens[cid] = next(self._counter)

    def forget(self, cid: str) -> None:
        """The container is gone: its entry and generation go (a late put finds none)."""
        with self._guard:
            self._entries.pop(cid, None)
            self._gens.pop(cid, None)

    def get(self, cdir: ContainerDir) -> Status | None:
        """The cached status if it is still true, else None (read it afresh)."""
        with self._guard:
            status = self._entries.get(cdir.id)
        if status is None:
            return None
        if status.status != "stopped" and (
                not self._watching(cdir.id) or os.path.lexists(cdir.status)):
            return None  # the run may have ended: its monitor exited or recorded it
        return copy.copy(status)
