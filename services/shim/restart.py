"""Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`), applied by the
shim, which sees a container exit first.

One supervisor thread per container with a policy: it sleeps on the container's monitor
(the monitor exits right after recording the exit), then decides like Docker: on-failure
only for a non-zero exit and at most N times; never after a `stop` (until the next
`start`); with a delay that starts at 100 ms, doubles per restart, caps at 1 minute and
resets once a run lasted 10 s. The policy and the count live in the container's meta.json,
so a restarted shim re-arms its supervisors (``Supervisor.resume``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.core.logging import get_logger
from services.core.restart_policy import Policy, parse
from vocab.errors import MuelleError

__all__ = ["Hooks", "Policy", "Supervisor", "parse"]

FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # a run this long resets the delay


@dataclass
class Hooks:
    """What the supervisor needs from the shim."""

    wait_stopped: Callable[[str, Callable[[], bool]], bool]  # (cid, cancelled) -> stopped
    exit_code: Callable[[str], int]
    started_at: Callable[[str], float]  # monotonic-ish seconds the last run started
    manually_stopped: Callable[[str], bool]
    restarts: Callable[[str], int]
    restart: Callable[[str], None]  # start again and count it


class Supervisor:
    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self._guard = threading.Lock()
        self._watching: dict[str, threading.Event] = {}
        self._pending: set[str] = set()  # waiting out a restart delay
        self.log = get_logger(component="restart")

    def watch(self, cid: str, policy: Policy) -> None:
        """Supervise ``cid`` (just started by hand) under ``policy``, afresh: a supervisor
        left from an earlier run is retired."""
        if policy.name == "no":
            return
        cancel = threading.Event()
        with self._guard:
            old = self._watching.get(cid)
            self._watching[cid] = cancel
        if old is not None:
            old.set()
        threading.Thread(target=self._run, args=(cid, policy, cancel), daemon=True,
                         name=f"restart-{cid[:12]}").start()

    def forget(self, cid: str) -> None:
        """Stop supervising (container removed)."""
        with self._guard:
            cancel = self._watching.pop(cid, None)
            self._pending.discard(cid)
        if cancel is not None:
            cancel.set()

    def restarting(self, cid: str) -> bool:
        with self._guard:
            return cid in self._pending

    def _run(self, cid: str, policy: Policy, cancel: threading.Event) -> None:
        delay = FIRST_DELAY
        log = self.log.bind(container=cid[:12], policy=policy.text())
        try:
            while not cancel.is_set():
                if not self.hooks.wait_stopped(cid, cancel.is_set) or cancel.is_set():
                    return
                code = self.hooks.exit_code(cid)
                ran = time.time() - self.hooks.started_at(cid)
                if not policy.wants_restart(code, self.hooks.restarts(cid),
                                            self.hooks.manually_stopped(cid)):
                    return
                delay = FIRST_DELAY if ran >= RESET_AFTER else delay
                with self._guard:
                    self._pending.add(cid)
                log.info("restarting", exit_code=code, delay=round(delay, 2))
                if cancel.wait(delay):
                    return
                with self._guard:
                    self._pending.discard(cid)
                if self.hooks.manually_stopped(cid):
                    return  # stopped by hand during the delay
                self.hooks.restart(cid)
                delay = min(delay * 2, MAX_DELAY)
        except MuelleError as exc:
            log.warning("restart failed, giving up", error=str(exc))
        finally:
            with self._guard:
                self._pending.discard(cid)
                if self._watching.get(cid) is cancel:
                    del self._watching[cid]
