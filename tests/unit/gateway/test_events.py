"""The gateway's event bus: kept events for since, until ends the stream, one die a run."""

from __future__ import annotations

import threading
import time

from services.gateway.events import EventBus, Exits


def test_since_replays_kept_events_and_until_ends_the_stream() -> None:
    bus = EventBus()
    before = time.time_ns()
    bus.publish("volume", "create", "v1", {"driver": "local"})
    bus.publish("volume", "destroy", "v1", {"driver": "local"})
    got = list(bus.subscribe(since_nano=before, until_nano=time.time_ns()))
    assert [(e.action, e.actor_id) for e in got] == [("create", "v1"), ("destroy", "v1")]
    assert bus.subscribers() == 0


def test_a_subscriber_gets_new_events_and_leaves_when_cancelled() -> None:
    bus = EventBus()
    leave = threading.Event()
    stream = bus.subscribe(cancelled=leave.is_set)
    bus.publish("network", "create", "n1")  # before the first next(): not subscribed yet
    threading.Timer(0.1, lambda: bus.publish("network", "destroy", "n1")).start()
    first = next(stream)
    assert (first.action, first.actor_id) == ("destroy", "n1")
    leave.set()
    assert list(stream) == []
    assert bus.subscribers() == 0


def test_each_run_dies_once_whoever_sees_the_exit() -> None:
    bus = EventBus()
    exits = Exits(bus, lambda cid: {"name": "c"})
    exits.started("c1")
    exits.exited("c1", 0)
    exits.exited("c1", 137)  # a second witness of the same exit
    exits.exited("c2", 1)  # never started while watched
    kept = list(bus.subscribe(since_nano=1, until_nano=time.time_ns()))
    assert [(e.action, dict(e.attributes)) for e in kept] == [
        ("die", {"name": "c", "exitCode": "0"})]
