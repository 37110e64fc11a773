"""``delete``: remove what create made (cgroup dirs, state dir); --force kills first."""

from __future__ import annotations

import os
import time
from _signal import SIGKILL  # signal's enums import enum: ~3 ms of every run

from services.runtime import cgroups, hostmounts
from services.runtime.log import get_logger
from services.runtime.scoped import suppress
from services.runtime.store import State, Store, proc_start_time
from vocab.errors import FailedPrecondition

# typing at run time is not needed here (annotations only); mypy treats TYPE_CHECKING
# as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def delete(store: Store, cid: str, force: bool = False) -> None:
    state = store.load(cid)
    status = store.status(state)
    if status != "stopped":
        if not force:
            raise FailedPrecondition(f"cannot delete container {cid}: it is {status}, "
                                     "not stopped (use --force)")
        _kill_init(state)
    cgroup = cgroups.for_path(state.cgroups_path) if state.cgroups_path else None
    if cgroup is not None:
        # Processes that escaped the pid namespace's teardown (e.g. a shared pid ns).
        left = cgroup.pids()
        if left:
            get_logger(container=cid).info("killing leftover processes", pids=left)
        for _ in range(200):
            if not left:
                break
            for pid in left:
                with suppress(ProcessLookupError):
                    os.kill(pid, SIGKILL)
            time.sleep(0.01)
            left = cgroup.pids()
        try:
            cgroup.destroy()
        except OSError as exc:
            raise FailedPrecondition(f"cannot remove cgroup {state.cgroups_path}: "
                                     f"{exc.strerror}") from None
    recorded = os.path.join(store.dir(cid), "hooks.json")
    config = _read(recorded) if os.path.exists(recorded) else None
    hostmounts.release(store.dir(cid))  # a container without a mount namespace
    store.remove(cid)
    get_logger(container=cid).info("deleted")
    if config and config.get("hooks", {}).get("poststop"):
        _poststop(config, state)


def _read(path: str) -> dict[str, Any] | None:
    import json

    with suppress(OSError, ValueError), open(path) as f:
        data = json.loads(f.read())
        return data if isinstance(data, dict) else None
    return None


def _poststop(config: dict[str, Any], state: State) -> None:
    from services.runtime import hooks

    log = get_logger(container=state.id)
    # runtime-spec: a failed poststop hook is a warning; the rest still run, the deletion
    # stands.
    hooks.run_all(hooks.of(config, "poststop"),
                  hooks.state(config, state.id, "stopped", state.pid, state.bundle),
                  state.bundle if os.path.isdir(state.bundle) else None,
                  lambda error: log.warning("poststop hook failed", error=error))


def _kill_init(state: State) -> None:
    with suppress(ProcessLookupError):
        os.kill(state.pid, SIGKILL)
    for _ in range(500):
        if proc_start_time(state.pid) != state.start_time:
            return
        time.sleep(0.01)
    raise FailedPrecondition(f"container {state.id}: init {state.pid} did not die")
