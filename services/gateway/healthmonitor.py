"""Running containers' health checks: one thread per container that has one, probing
it with an exec every interval, as dockerd's health monitor (daemon/health.go).

Why the gateway: the check, the container's record and the event stream are the
gateway's, and a probe is an exec, which the shim already serves (types.v1 ExecStart, the
same call `docker exec` makes). The shim knows nothing of health; it stays the owner of
processes only. Starts and restarts the shim does by itself (a restart policy) are seen
by comparing the container's start time with the run the health belongs to
(healthstore.py), so a view is right even before the monitor noticed.

The thread of a container ends when the container is removed, or stops without a restart
policy that could bring it back; a start (engine.start, restart, attach) and the gateway's
start (restore) begin it again. A probe: the test as an exec (the container's user,
environment and working directory), stdout and stderr together, the first 4 KiB kept; at
its timeout the shim kills it and it counts as failed (exit code -1). A result that comes
after the container stopped or restarted is dropped, as dockerd drops it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.core.logging import get_logger
from services.gateway import healthcheck as hc
from services.gateway.healthstore import HealthStore
from vocab.errors import DeadlineExceeded, MuelleError, NotFound
from vocab.timefmt import go_duration, parse_seconds, rfc3339_nano

TYPE_CHECKING = False
if TYPE_CHECKING:
    from muelle.shim.v1 import shim_pb2_grpc

LIVE = ("running", "paused")
RETRY = 1.0  # s between two looks when the shim did not answer
STOPPED_POLL = 1.0  # s between two looks at a stopped container a restart policy may revive
GRACE = 5.0  # s past a whole-second timeout before the gateway gives up on the shim's kill


class HealthMonitor:
    def __init__(self, store: HealthStore, shim: shim_pb2_grpc.ShimStub,
                 event: Callable[[str, str, dict[str, str]], None],
                 may_restart: Callable[[str], bool]) -> None:
        self.store = store
        self.shim = shim
        # (container ID, action, attributes): a container event; dockerd's for a probe are
        # exec_create, exec_start and exec_die, and health_status at a change
        self.event = event
        self.may_restart = may_restart  # has a restart policy that may start it again
        self._guard = threading.Lock()
        self._wakes: dict[str, threading.Event] = {}
        self._closed = False

    # ------------------------------------------------------------------ what others call

    def watch(self, cid: str) -> None:
        """Probe ``cid`` while it runs, if it has a check to run (idempotent)."""
        kept = self.store.get(cid)
        if kept is None or hc.probe_argv(kept.config) is None:
            return
        with self._guard:
            if self._closed:
                return
            wake = self._wakes.get(cid)
            if wake is not None:
                wake.set()  # a thread is there: let it look at the new run now
                return
            wake = self._wakes[cid] = threading.Event()
        threading.Thread(target=self._loop, args=(cid, wake), name=f"health-{cid[:12]}",
                         daemon=True).start()

    def close(self) -> None:
        """Every thread ends (at its next look), the store closes; the health kept
        stays on disk."""
        with self._guard:
            self._closed = True
            wakes = list(self._wakes.values())
        for wake in wakes:
            wake.set()
        self.store.close()

    def forget(self, cid: str) -> None:
        """The container is gone: its check and health too, its thread ends."""
        self.store.forget(cid)
        with self._guard:
            wake = self._wakes.get(cid)
        if wake is not None:
            wake.set()

    def halted(self, cid: str) -> None:
        """The container stopped or was paused: no probe runs, and dockerd then calls it
        unhealthy ("for compatibility reasons", container/health.go), with no event; a
        success after an unpause makes it healthy again, with one."""
        kept = self.store.get(cid)
        if kept is not None and kept.health is not None and kept.health.status != hc.UNHEALTHY:
            kept.health.status = hc.UNHEALTHY
            self.store.save(cid, kept.run, kept.health, durable=True)

    def view(self, cid: str, status: str, started_at: str) -> types_pb2.Health | None:
        """The health inspect and ps show, given the shim's status and start time: None
        without a check to run or before the first start with it."""
        kept = self.store.get(cid)
        if kept is None or hc.probe_argv(kept.config) is None or kept.health is None \
                and status not in LIVE:
            return None
        if status in LIVE and started_at and kept.run != started_at:
            return hc.fresh(kept.health)  # a run the monitor has not seen yet
        health = kept.health or hc.fresh()
        if status != "running":
            health.status = hc.UNHEALTHY  # not probed now (see halted)
        return health

    # ------------------------------------------------------------------ the thread

    def _loop(self, cid: str, wake: threading.Event) -> None:
        log = get_logger(container=cid[:12])
        try:
            self._probe_while_running(cid, wake)
        except Exception as exc:  # noqa: BLE001 - a bug must not end health checks silently
            if not self._closed:  # else: the gateway stops, its databases close under us
                log.error("health monitor failed", error=repr(exc))
        finally:
            with self._guard:
                if self._wakes.get(cid) is wake:
                    del self._wakes[cid]

    def _state(self, cid: str) -> shim_pb2.ContainerStatus | None:
        """None when the shim does not know it; MuelleError when it did not answer."""
        try:
            return self.shim.State(shim_pb2.StateRequest(id=cid))
        except NotFound:
            return None

    def _probe_while_running(self, cid: str, wake: threading.Event) -> None:
        run, due = "", 0.0
        while not self._closed:
            kept = self.store.get(cid)
            argv = hc.probe_argv(kept.config) if kept is not None else None
            if kept is None or argv is None:
                return
            timing = hc.Timing.of(kept.config)
            try:
                st = self._state(cid)
            except MuelleError:
                wake.wait(RETRY)
                wake.clear()
                continue
            if st is None:
                return
            if st.status not in LIVE or not st.started_at:
                self.halted(cid)
                if not self.may_restart(cid):
                    with self._guard:  # a watch() of a start just now keeps this thread
                        if not wake.is_set():
                            del self._wakes[cid]
                            return
                wake.wait(STOPPED_POLL)
                wake.clear()
                continue
            started = parse_seconds(st.started_at) or time.time()
            if st.started_at != run:  # a new run (or the first this thread sees)
                run = st.started_at
                health = kept.health if kept.run == run and kept.health else None
                if health is None:
                    health = hc.fresh(kept.health)
                    self.store.save(cid, run, health, durable=True)
                now = time.time()
                due = now + timing.next_wait(now - started, health.status)
            left = due - time.time()
            if left > 0:
                if wake.wait(left):
                    wake.clear()
                continue  # look again: it may have stopped, restarted or gone meanwhile
            if st.status == "paused":  # dockerd probes no paused container
                self.halted(cid)
                due = time.time() + timing.interval
                continue
            result = self._probe(cid, argv, kept.config)
            self._record(cid, run, started, result, timing)
            now = time.time()
            kept = self.store.get(cid)
            status = kept.health.status if kept and kept.health else hc.STARTING
            due = now + timing.next_wait(now - started, status)

    def _record(self, cid: str, run: str, started: float,
                result: types_pb2.HealthcheckResult, timing: hc.Timing) -> None:
        if self._closed:
            return
        try:
            st = self._state(cid)
        except MuelleError:
            return  # the probe's run cannot be told: dropped
        if st is None or st.status != "running" or st.started_at != run:
            return  # stopped, paused or restarted meanwhile: dockerd drops the result too
        kept = self.store.get(cid)
        if kept is None or kept.run != run or kept.health is None:
            return
        health = kept.health
        since_start = (parse_seconds(result.start) or time.time()) - started
        changed = hc.record(health, result, timing, since_start)
        self.store.save(cid, run, health, durable=changed)
        if changed:
            get_logger(container=cid[:12]).info("health", status=health.status)
            self.event(cid, f"health_status: {health.status}", {})

    def _probe(self, cid: str, argv: list[str],
               config: types_pb2.Healthcheck) -> types_pb2.HealthcheckResult:
        """One run of the test. A whole-second timeout is the shim's (it kills the probe
        and then ends the stream); a finer one is the call's deadline (the shim kills the
        probe when the call is cancelled)."""
        timeout_ns = config.timeout_ns or hc.DEFAULT_TIMEOUT
        timeout = timeout_ns / hc.SECOND
        whole = timeout_ns % hc.SECOND == 0
        start = types_pb2.ExecStart(container=cid, cmd=argv,
                                    timeout_seconds=int(timeout) if whole else 0)
        inputs = iter([types_pb2.ExecInput(start=start),
                       types_pb2.ExecInput(close_stdin=True)])
        exec_id = secrets.token_hex(32)  # as an exec's ID in dockerd's events
        what = " ".join(argv)
        self.event(cid, f"exec_create: {what}", {"execID": exec_id})
        self.event(cid, f"exec_start: {what}", {"execID": exec_id})
        began = time.time_ns()
        output = bytearray()
        exit_code, error, timed_out = -1, "", False
        try:
            for event in self.shim.Exec(inputs, timeout=timeout + GRACE if whole else timeout):
                if event.HasField("output"):
                    room = hc.MAX_OUTPUT + 1 - len(output)  # one more byte tells "cut"
                    if room > 0:
                        output.extend(event.output.data[:room])
                elif event.HasField("exit"):
                    exit_code, error = event.exit.exit_code, event.exit.error
                    timed_out = event.exit.timed_out
        except DeadlineExceeded:
            timed_out = True
        except MuelleError as exc:  # it could not run (the container stopped meanwhile)
            exit_code, error = -1, str(exc)
        result = types_pb2.HealthcheckResult(start=rfc3339_nano(began),
                                             end=rfc3339_nano(time.time_ns()))
        # dockerd's exit code of a killed probe (137) in its event, -1 in the result
        self.event(cid, "exec_die", {"execID": exec_id,
                                     "exitCode": str(137 if timed_out else exit_code)})
        if timed_out:
            text = hc.cap_output(bytes(output))
            result.exit_code = -1
            result.output = f"Health check exceeded timeout ({go_duration(timeout_ns)})" + (
                f": {text}" if text else "")
        elif error:
            result.exit_code, result.output = -1, error
        else:
            result.exit_code, result.output = exit_code, hc.cap_output(bytes(output))
        return result
