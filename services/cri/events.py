"""GetContainerEvents: container and sandbox lifecycle events for the kubelet's evented
PLEG, without polling.

engine.v1 has no event stream, so the events come from where muelle-cri sees the changes
happen: CREATED and STARTED when its own Create/Start (or RunPodSandbox) succeeds, DELETED
when its Remove does, STOPPED when an engine WaitContainer call (one blocking call per
running container, made when it starts or when muelle-cri starts and finds it running)
returns, whoever stopped the container and whether it exited by itself. Like containerd's
CRI, a sandbox's events carry the sandbox's ID. Each event carries the pod's status and
its containers' statuses, as the kubelet expects, read when the event happens.

Events are not kept: a subscriber sees what happens while it is subscribed (the kubelet
relists on (re)connect). What a muelle-cri restart or a gateway outage hides from the
WaitContainer calls (a container that stopped meanwhile) is not announced.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc

from services.core.logging import get_logger
from vocab.errors import MuelleError, NotFound, ResourceExhausted

# The statuses an event carries: (the pod's status or None, its containers' statuses).
Describe = Callable[[str], tuple[api_pb2.PodSandboxStatus | None, list[api_pb2.ContainerStatus]]]
# A subscriber that falls this far behind is dropped (its stream ends with an error)
# rather than holding events in memory without bound.
BACKLOG = 10_000


class Events:
    def __init__(self, engine: engine_pb2_grpc.EngineStub) -> None:
        self.engine = engine
        self.describe: Describe = lambda sandbox_id: (None, [])
        self._lock = threading.Lock()
        self._subscribers: list[queue.Queue[api_pb2.ContainerEventResponse | None]] = []
        self._watched: set[str] = set()

    def publish(self, kind: api_pb2.ContainerEventType.ValueType, cid: str,
                sandbox_id: str) -> None:
        with self._lock:
            if not self._subscribers:
                return  # nobody listens: no statuses to read
        try:
            pod, containers = self.describe(sandbox_id)
        except MuelleError as exc:  # the pod went meanwhile: the event without statuses
            get_logger().debug("event without statuses", container=cid, error=str(exc))
            pod, containers = None, []
        event = api_pb2.ContainerEventResponse(
            container_id=cid, container_event_type=kind, created_at=time.time_ns(),
            pod_sandbox_status=pod, containers_statuses=containers)
        with self._lock:
            for q in list(self._subscribers):
                if q.qsize() >= BACKLOG:
                    self._subscribers.remove(q)
                    q.put(None)  # tells the stream it lost events
                else:
                    q.put(event)

    def subscribe(self, active: Callable[[], bool]) -> Iterator[api_pb2.ContainerEventResponse]:
        """The events from this call on (the subscription is in place when it returns),
        while ``active()`` (the client is connected)."""
        q: queue.Queue[api_pb2.ContainerEventResponse | None] = queue.Queue()
        with self._lock:
            self._subscribers.append(q)
        return self._drain(q, active)

    def _drain(self, q: queue.Queue[api_pb2.ContainerEventResponse | None],
               active: Callable[[], bool]) -> Iterator[api_pb2.ContainerEventResponse]:
        try:
            while active():
                try:
                    event = q.get(timeout=1.0)  # wakes to notice a client that left
                except queue.Empty:
                    continue
                if event is None:
                    raise ResourceExhausted(f"the event subscriber fell {BACKLOG} events "
                                            "behind: subscribe again (and relist)")
                yield event
        finally:
            with self._lock:
                if q in self._subscribers:
                    self._subscribers.remove(q)

    def watch(self, cid: str, sandbox_id: str) -> None:
        """Announce STOPPED when the running container ``cid`` stops (once per ID)."""
        with self._lock:
            if cid in self._watched:
                return
            self._watched.add(cid)
        threading.Thread(target=self._wait, args=(cid, sandbox_id), daemon=True,
                         name=f"cri-wait-{cid[:12]}").start()

    def _wait(self, cid: str, sandbox_id: str) -> None:
        try:
            self.engine.WaitContainer(engine_pb2.WaitContainerRequest(container=cid))
        except NotFound:
            return  # removed before it was seen to stop: DELETED says it all
        except MuelleError as exc:
            get_logger().warning("cannot wait for a container: no STOPPED event",
                                 container=cid, error=str(exc))
            return
        finally:
            with self._lock:
                self._watched.discard(cid)
        self.publish(api_pb2.CONTAINER_STOPPED_EVENT, cid, sandbox_id)
