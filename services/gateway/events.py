"""The engine's event stream (engine.v1 Events, `docker events`): what happened to
containers, images, networks and volumes, as Docker reports it.

The gateway publishes an event after each change it made succeeded. The last
``HISTORY`` events are kept in memory for ``since`` (as dockerd keeps its last 1000);
subscribers get their own queue. Exits the gateway did not cause (a process that ends
by itself) come from ``ExitWatch``: while anyone subscribes, one thread lists the shim's
containers and reports a running container that is no longer running as ``die``. An exit
the gateway caused (stop, kill, an auto-remove's watcher) is reported by the gateway
itself, through the same ``Exits`` book, so each run dies once.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2

from vocab.errors import MuelleError

HISTORY = 1024
POLL = 0.2  # s between two looks at the shim's containers while someone subscribes
_LIVE = ("running", "paused")


class EventBus:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._history: collections.deque[engine_pb2.Event] = collections.deque(maxlen=HISTORY)
        self._subscribers: list[queue.SimpleQueue[engine_pb2.Event | None]] = []
        self.on_first_subscriber: Callable[[], None] = lambda: None

    def publish(self, type_: str, action: str, actor_id: str,
                attributes: Mapping[str, str] | None = None) -> None:
        event = engine_pb2.Event(type=type_, action=action, actor_id=actor_id,
                                 attributes=dict(attributes or {}), time_nano=time.time_ns())
        with self._guard:
            self._history.append(event)
            for q in self._subscribers:
                q.put(event)

    def subscribers(self) -> int:
        with self._guard:
            return len(self._subscribers)

    def subscribe(self, since_nano: int = 0, until_nano: int = 0,
                  cancelled: Callable[[], bool] = lambda: False) -> Iterator[engine_pb2.Event]:
        """Kept events from ``since_nano``, then new ones until ``until_nano`` has passed
        or ``cancelled()``. An until in the past ends after the kept events."""
        q: queue.SimpleQueue[engine_pb2.Event | None] = queue.SimpleQueue()
        with self._guard:
            kept = [e for e in self._history if since_nano and e.time_nano >= since_nano]
            self._subscribers.append(q)
            first = len(self._subscribers) == 1
        if first:
            self.on_first_subscriber()
        try:
            for event in kept:
                if until_nano and event.time_nano > until_nano:
                    return
                yield event
            while not cancelled():
                left = (until_nano - time.time_ns()) / 1e9 if until_nano else 1.0
                if left <= 0:
                    return
                try:
                    got = q.get(timeout=min(left, 1.0))
                except queue.Empty:
                    continue
                if got is None or (until_nano and got.time_nano > until_nano):
                    return
                yield got
        finally:
            with self._guard:
                self._subscribers.remove(q)


class Exits:
    """Which containers run now, as far as events told: each run dies once.

    ``started`` on a start; ``exited`` from whoever sees the end first (the gateway after
    a stop or kill, the auto-remove watcher, ExitWatch); only the first publishes die."""

    def __init__(self, bus: EventBus, attributes: Callable[[str], dict[str, str]]) -> None:
        self.bus = bus
        self.attributes = attributes  # container ID -> its event attributes
        self._guard = threading.Lock()
        self._running: set[str] = set()

    def started(self, cid: str) -> None:
        with self._guard:
            self._running.add(cid)

    def exited(self, cid: str, exit_code: int, attrs: dict[str, str] | None = None) -> None:
        with self._guard:
            if cid not in self._running:
                return
            self._running.discard(cid)
        attrs = dict(attrs if attrs is not None else self.attributes(cid))
        attrs["exitCode"] = str(exit_code)
        self.bus.publish("container", "die", cid, attrs)

    def running(self) -> set[str]:
        with self._guard:
            return set(self._running)

    def forget(self, cid: str) -> None:
        with self._guard:
            self._running.discard(cid)


class ExitWatch:
    """One thread, alive while the bus has subscribers: exits nobody asked for."""

    def __init__(self, runtime: Any, exits: Exits) -> None:
        self.runtime = runtime
        self.exits = exits
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def ensure(self) -> None:
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, name="exit-watch", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while self.exits.bus.subscribers():
            with contextlib.suppress(MuelleError):  # the shim is away a moment: look again
                self.look()
            time.sleep(POLL)

    def look(self) -> None:
        reply = self.runtime.List(shim_pb2.ListRequest())
        seen = {c.id: c for c in reply.containers}
        for cid in self.exits.running():
            status = seen.get(cid)
            if status is None or status.status not in _LIVE:
                self.exits.exited(cid, status.exit_code if status else 0)
