"""``pause`` / ``resume``: freeze or thaw every process of the container (its cgroup)."""

from __future__ import annotations

from services.runtime import cgroups
from services.runtime.errors import NotRunning
from services.runtime.store import Store
from vocab.errors import FailedPrecondition


def pause(store: Store, cid: str) -> None:
    state = store.load(cid)
    status = store.status(state)
    if status != "running":
        raise NotRunning(f"container {cid} is {status}, not running")
    cgroups.for_path(state.cgroups_path).freeze(True)


def resume(store: Store, cid: str) -> None:
    state = store.load(cid)
    status = store.status(state)
    if status != "paused":
        raise FailedPrecondition(f"container {cid} is {status}, not paused")
    cgroups.for_path(state.cgroups_path).freeze(False)
