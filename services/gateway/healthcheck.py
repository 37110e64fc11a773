"""Container health checks as dockerd has them (daemon/health.go, daemon/commit.go merge):
the checks of a request's Healthcheck, its merge over the image's, the probe's argv, and
the state machine one probe result moves.

Plain data in, plain data out: the probing itself (threads, exec, events) is
healthmonitor.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

from muelle.types.v1 import types_pb2

from vocab.errors import InvalidArgument
from vocab.timefmt import go_duration

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000  # 1 ms: dockerd's containertypes.MinimumDuration
MAX_OUTPUT = 4096  # bytes of a probe's output kept (dockerd's maxOutputLen)
MAX_LOG = 5  # probe results kept (maxLogEntries)

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
TYPES = ("NONE", "CMD", "CMD-SHELL")
_DURATIONS = (("interval_ns", "Interval"), ("timeout_ns", "Timeout"),
              ("start_period_ns", "StartPeriod"), ("start_interval_ns", "StartInterval"))


def check(hc: types_pb2.Healthcheck) -> None:
    """dockerd's checks of a create's Healthcheck, its words naming the field; and a test
    of a type it could never run (dockerd stores that and logs a warning at each start)."""
    for attr, name in _DURATIONS:
        value = getattr(hc, attr)
        if value and value < MIN_DURATION:
            raise InvalidArgument(f"{name} in Healthcheck cannot be less than "
                                  f"{go_duration(MIN_DURATION)}")
    if hc.retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    if not hc.test:
        return
    kind = hc.test[0]
    if kind not in TYPES:
        raise InvalidArgument(f"Healthcheck.Test: unknown type {kind!r} (want NONE, CMD or "
                              "CMD-SHELL)")
    if kind == "NONE" and len(hc.test) > 1:
        raise InvalidArgument('Healthcheck.Test: "NONE" takes no command')
    if kind != "NONE" and (len(hc.test) < 2 or not hc.test[1]):
        raise InvalidArgument(f"Healthcheck.Test: {kind} needs a command")


def merge(image: types_pb2.Healthcheck | None,
          request: types_pb2.Healthcheck | None) -> types_pb2.Healthcheck | None:
    """The health check a container gets: the request's, each zero field taking the
    image's (dockerd's merge); None when neither has one."""
    if request is None:
        return _copy(image) if image is not None else None
    out = _copy(request)
    if image is None:
        return out
    if not out.test:
        out.test.extend(image.test)
    for attr, _ in _DURATIONS:
        if not getattr(out, attr):
            setattr(out, attr, getattr(image, attr))
    if not out.retries:
        out.retries = image.retries
    return out


def _copy(hc: types_pb2.Healthcheck) -> types_pb2.Healthcheck:
    out = types_pb2.Healthcheck()
    out.CopyFrom(hc)
    return out


def probe_argv(hc: types_pb2.Healthcheck | None) -> list[str] | None:
    """What a probe runs; None when there is no check to run (none, ["NONE"], [])."""
    if hc is None or len(hc.test) < 2 or hc.test[0] not in ("CMD", "CMD-SHELL"):
        return None
    if hc.test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", *hc.test[1:]]
    return list(hc.test[1:])


@dataclass(frozen=True)
class Timing:
    """A check's durations (seconds) and retries with dockerd's defaults filled in."""

    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int

    @classmethod
    def of(cls, hc: types_pb2.Healthcheck) -> Timing:
        def seconds(value: int, default: int) -> float:
            # not above zero: the default (an image's config is not checked like a
            # request; a negative interval would probe without pause)
            return (value if value > 0 else default) / SECOND

        return cls(interval=seconds(hc.interval_ns, DEFAULT_INTERVAL),
                   timeout=seconds(hc.timeout_ns, DEFAULT_TIMEOUT),
                   start_period=seconds(hc.start_period_ns, DEFAULT_START_PERIOD),
                   start_interval=seconds(hc.start_interval_ns, DEFAULT_START_INTERVAL),
                   retries=hc.retries if hc.retries > 0 else DEFAULT_RETRIES)

    def next_wait(self, since_start: float, status: str) -> float:
        """Seconds until the next probe (dockerd's getInterval): the interval, cut to
        what is left of the start period, or the start interval while starting in it."""
        if since_start >= self.start_period:
            return self.interval
        left = self.start_period - since_start
        if left < self.interval:
            return left
        return self.start_interval if status == STARTING else self.interval


def fresh(previous: types_pb2.Health | None = None) -> types_pb2.Health:
    """The health of a container that (re)starts: starting, no streak, the log kept."""
    out = types_pb2.Health(status=STARTING)
    if previous is not None:
        out.log.extend(previous.log)
    return out


def record(health: types_pb2.Health, result: types_pb2.HealthcheckResult,
           timing: Timing, since_start: float) -> bool:
    """Apply one probe's ``result`` (begun ``since_start`` seconds after the container
    started) to ``health`` in place, as dockerd's handleProbeResult; True when the status
    changed (a health_status event is due)."""
    old = health.status
    health.log.append(result)
    del health.log[:-MAX_LOG]
    if result.exit_code == 0:
        health.failing_streak = 0
        health.status = HEALTHY
    elif health.status != STARTING or since_start >= timing.start_period:
        # Failures in the start period count only once a probe has succeeded.
        health.failing_streak += 1
        if health.failing_streak >= timing.retries:
            health.status = UNHEALTHY
    return health.status != old


def cap_output(data: bytes) -> str:
    """A probe's output as dockerd keeps it: the first 4096 bytes, "..." when cut."""
    text = data[:MAX_OUTPUT].decode("utf-8", "replace")
    return text + "..." if len(data) > MAX_OUTPUT else text


def status_suffix(health: str) -> str:
    """What `ps` adds to "Up 5 seconds": " (healthy)", " (health: starting)"."""
    if not health:
        return ""
    return " (health: starting)" if health == STARTING else f" ({health})"
