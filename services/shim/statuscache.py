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
from collections.abc import Callable, Sequence

from services.shim.status import Status
from services.shim.store import ContainerDir


class StatusCache:
    def __init__(self, watching: Callable[[str], bool],
                 watching_all: Callable[[list[str]], set[str]] | None = None) -> None:
        self._watching = watching  # does the exit watch still wait on cid's monitor?
        # the same asked of many at once (ExitWatch.watching_all): the ones it is true of
        self._watching_all = watching_all or (lambda cids: {c for c in cids if watching(c)})
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
        return self.get_many([(cdir.id, str(cdir.status))])[0]

    def get_many(self, wanted: Sequence[tuple[str, str]]) -> list[Status | None]:
        """``get`` of each (ID, path of its status.json), in order: the monitors are asked
        all at once and no path object is made per container (`ps` of 1000)."""
        with self._guard:
            found = [self._entries.get(cid) for cid, _ in wanted]
        live = [cid for (cid, _), st in zip(wanted, found, strict=True)
                if st is not None and st.status != "stopped"]
        watched = self._watching_all(live) if live else set()
        out: list[Status | None] = []
        for (cid, status_file), status in zip(wanted, found, strict=True):
            if status is not None and status.status != "stopped" and (
                    cid not in watched or os.path.lexists(status_file)):
                status = None  # the run may have ended: its monitor exited or recorded it
            out.append(copy.copy(status) if status is not None else None)
        return out
