"""``kill``: signal the init (or, with --all, every process in the container's cgroup)."""

from __future__ import annotations

import contextlib
import os
import signal

from services.runtime import cgroups
from services.runtime.errors import NotRunning
from services.runtime.store import Store
from vocab.errors import InvalidArgument


def parse_signal(value: str) -> int:
    """KILL, SIGKILL, sigkill, 9 -> 9."""
    text = value.strip().upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < signal.NSIG:
            return num
        raise InvalidArgument(f"invalid signal {value!r}")
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise InvalidArgument(f"invalid signal {value!r}") from None


def kill(store: Store, cid: str, sig: int, all_processes: bool = False) -> None:
    state = store.load(cid)
    if store.status(state) == "stopped":
        raise NotRunning(f"container {cid} is not running")
    if all_processes:
        for pid in cgroups.for_path(state.cgroups_path).pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return
    try:
        os.kill(state.pid, sig)
    except ProcessLookupError:
        raise NotRunning(f"container {cid} is not running") from None
