"""Health checks: dockerd's checks, merge and state machine (healthcheck.py), and the
monitor probing a container of the fake shim through the Engine (healthmonitor.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.gateway import healthcheck as hc
from services.gateway.engine import Engine
from services.gateway.records import Records
from tests.unit.gateway.fakes import FakeImages, FakeShim
from vocab.errors import DeadlineExceeded, InvalidArgument
from vocab.timefmt import go_duration, parse_go_duration

MS = 1_000_000
S = hc.SECOND


def _hc(*test: str, **fields: int) -> types_pb2.Healthcheck:
    return types_pb2.Healthcheck(test=list(test), **fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- checks and merge


@pytest.mark.parametrize(("config", "message"), [
    (_hc("CMD", "true", interval_ns=MS - 1), "Interval in Healthcheck cannot be less than 1ms"),
    (_hc("CMD", "true", timeout_ns=-S), "Timeout in Healthcheck cannot be less than 1ms"),
    (_hc("CMD", "true", start_period_ns=5), "StartPeriod in Healthcheck"),
    (_hc("CMD", "true", start_interval_ns=-1), "StartInterval in Healthcheck"),
    (_hc("CMD", "true", retries=-1), "Retries in Healthcheck cannot be negative"),
    (_hc("HTTP", "/"), "unknown type 'HTTP'"),
    (_hc("CMD"), "CMD needs a command"),
    (_hc("CMD-SHELL", ""), "CMD-SHELL needs a command"),
    (_hc("NONE", "x"), "NONE.*takes no command"),
])
def test_check_refuses_what_dockerd_refuses(config: types_pb2.Healthcheck,
                                            message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        hc.check(config)


@pytest.mark.parametrize("config", [
    _hc(), _hc("NONE"), _hc("CMD", "true", interval_ns=MS, retries=0),
    _hc("CMD-SHELL", "exit 0", interval_ns=S, timeout_ns=S, start_period_ns=0, retries=9),
])
def test_check_passes_what_dockerd_takes(config: types_pb2.Healthcheck) -> None:
    hc.check(config)


IMAGE = _hc("CMD", "probe", interval_ns=5 * S, timeout_ns=2 * S, start_period_ns=S,
            start_interval_ns=S // 2, retries=2)


@pytest.mark.parametrize(("image", "request_", "merged"), [
    (None, None, None),
    (IMAGE, None, IMAGE),
    (None, _hc("CMD-SHELL", "x"), _hc("CMD-SHELL", "x")),
    # each zero field of the request takes the image's
    (IMAGE, _hc(interval_ns=S), _hc("CMD", "probe", interval_ns=S, timeout_ns=2 * S,
                                    start_period_ns=S, start_interval_ns=S // 2, retries=2)),
    (IMAGE, _hc("CMD-SHELL", "y", retries=7),
     _hc("CMD-SHELL", "y", interval_ns=5 * S, timeout_ns=2 * S, start_period_ns=S,
         start_interval_ns=S // 2, retries=7)),
    # --no-healthcheck: the image's durations stay in the config, the test is NONE
    (IMAGE, _hc("NONE"), _hc("NONE", interval_ns=5 * S, timeout_ns=2 * S,
                             start_period_ns=S, start_interval_ns=S // 2, retries=2)),
])
def test_merge_as_dockerd(image: types_pb2.Healthcheck | None,
                          request_: types_pb2.Healthcheck | None,
                          merged: types_pb2.Healthcheck | None) -> None:
    assert hc.merge(image, request_) == merged


def test_merge_does_not_change_its_inputs() -> None:
    request_ = _hc(interval_ns=S)
    hc.merge(IMAGE, request_)
    assert request_ == _hc(interval_ns=S)


@pytest.mark.parametrize(("config", "argv"), [
    (None, None), (_hc(), None), (_hc("NONE"), None),
    (_hc("CMD", "cat", "/x"), ["cat", "/x"]),
    (_hc("CMD-SHELL", "test -f /x || exit 1"), ["/bin/sh", "-c", "test -f /x || exit 1"]),
])
def test_probe_argv(config: types_pb2.Healthcheck | None, argv: list[str] | None) -> None:
    assert hc.probe_argv(config) == argv


def test_timing_defaults_and_dockerd_intervals() -> None:
    t = hc.Timing.of(_hc("CMD", "x"))
    assert (t.interval, t.timeout, t.start_period, t.start_interval, t.retries) == \
        (30.0, 30.0, 0.0, 5.0, 3)
    assert t.next_wait(0.0, hc.STARTING) == 30.0
    t = hc.Timing.of(_hc("CMD", "x", interval_ns=10 * S, start_period_ns=60 * S,
                         start_interval_ns=2 * S))
    assert t.next_wait(1.0, hc.STARTING) == 2.0  # starting, in the start period
    assert t.next_wait(1.0, hc.HEALTHY) == 10.0  # healthy: the interval
    assert t.next_wait(55.0, hc.STARTING) == pytest.approx(5.0)  # what is left of it
    assert t.next_wait(61.0, hc.STARTING) == 10.0


# ---------------------------------------------------------------- the state machine


def _result(code: int, output: str = "") -> types_pb2.HealthcheckResult:
    return types_pb2.HealthcheckResult(exit_code=code, output=output)


def _run(timing: hc.Timing, codes: list[int], since: float = 100.0
         ) -> tuple[types_pb2.Health, list[str]]:
    health = hc.fresh()
    changes = []
    for code in codes:
        if hc.record(health, _result(code), timing, since):
            changes.append(health.status)
    return health, changes


def test_success_makes_healthy_and_failures_make_unhealthy_after_retries() -> None:
    timing = hc.Timing.of(_hc("CMD", "x", retries=2))
    health, changes = _run(timing, [0, 1, 1, 0, 1])
    assert changes == [hc.HEALTHY, hc.UNHEALTHY, hc.HEALTHY]
    assert (health.status, health.failing_streak) == (hc.HEALTHY, 1)


def test_failures_count_from_the_start_without_a_start_period() -> None:
    health, changes = _run(hc.Timing.of(_hc("CMD", "x")), [1, 1, 1, 1])
    assert changes == [hc.UNHEALTHY]
    assert health.failing_streak == 4


def test_failures_in_the_start_period_do_not_count_until_a_success() -> None:
    timing = hc.Timing.of(_hc("CMD", "x", start_period_ns=60 * S, retries=1))
    health, changes = _run(timing, [1, 1, 1], since=10.0)
    assert (health.status, health.failing_streak, changes) == (hc.STARTING, 0, [])
    # once healthy, a failure counts even in the start period
    health, changes = _run(timing, [1, 0, 1], since=10.0)
    assert changes == [hc.HEALTHY, hc.UNHEALTHY]
    # past the start period a failure counts while starting
    health, changes = _run(timing, [1], since=61.0)
    assert (health.status, health.failing_streak) == (hc.UNHEALTHY, 1)


def test_log_keeps_the_last_five_and_a_restart_keeps_it() -> None:
    health, _ = _run(hc.Timing.of(_hc("CMD", "x")), [0, 1, 2, 3, 4, 5, 6])
    assert [r.exit_code for r in health.log] == [2, 3, 4, 5, 6]
    again = hc.fresh(health)
    assert (again.status, again.failing_streak) == (hc.STARTING, 0)
    assert [r.exit_code for r in again.log] == [2, 3, 4, 5, 6]


def test_output_is_capped_like_dockerd() -> None:
    assert hc.cap_output(b"ok\n") == "ok\n"
    assert hc.cap_output(b"x" * 4096) == "x" * 4096
    assert hc.cap_output(b"x" * 4097) == "x" * 4096 + "..."


def test_ps_suffix() -> None:
    assert [hc.status_suffix(s) for s in ("", hc.STARTING, hc.HEALTHY, hc.UNHEALTHY)] == \
        ["", " (health: starting)", " (healthy)", " (unhealthy)"]


@pytest.mark.parametrize(("text", "ns", "shown"), [
    ("1s", S, "1s"), ("1.5s", 3 * S // 2, "1.5s"), ("90s", 90 * S, "1m30s"),
    ("500ms", 500 * MS, "500ms"), ("1h", 3600 * S, "1h0m0s"), ("0", 0, "0s"),
    ("-2s", -2 * S, "-2s"), ("100us", 100_000, "100µs"), ("0.1s", S // 10, "100ms"),
])
def test_go_durations(text: str, ns: int, shown: str) -> None:
    assert parse_go_duration(text) == ns
    assert go_duration(ns) == shown


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1s2", "--1s"])
def test_go_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


# ---------------------------------------------------------------- the monitor


class ProbedShim(FakeShim):
    """The fake shim with an Exec whose outcome the test sets: ``probe(argv)`` returns
    (exit code, output) or sleeps past the timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.probe: Callable[[list[str]], tuple[int, bytes]] = lambda argv: (0, b"ok\n")
        self.probes: list[list[str]] = []

    def Exec(self, inputs: Iterator[types_pb2.ExecInput],  # noqa: N802
             timeout: float | None = None) -> Iterator[types_pb2.ExecOutput]:
        start = next(inputs).start
        argv = list(start.cmd)
        self.probes.append(argv)
        outcome: list[tuple[int, bytes]] = []
        worker = threading.Thread(target=lambda: outcome.append(self.probe(argv)),
                                  daemon=True)
        worker.start()
        worker.join(start.timeout_seconds or timeout)
        if not outcome and start.timeout_seconds:  # the shim kills it and reports that
            yield types_pb2.ExecOutput(exit=types_pb2.ExecExit(exit_code=137,
                                                               timed_out=True))
            return
        if not outcome:  # the call's deadline passed
            raise DeadlineExceeded("deadline exceeded")
        code, out = outcome[0]
        yield types_pb2.ExecOutput(output=types_pb2.LogEntry(stream="stdout", data=out))
        yield types_pb2.ExecOutput(exit=types_pb2.ExecExit(exit_code=code))


@pytest.fixture
def shim() -> ProbedShim:
    return ProbedShim()


@pytest.fixture
def images() -> FakeImages:
    return FakeImages()


@pytest.fixture
def engine(tmp_path: Path, images: FakeImages, shim: ProbedShim) -> Iterator[Engine]:
    eng = Engine(Records(tmp_path / "gw"), images, shim)
    yield eng
    eng.health.close()
    eng.records.close()


def eventually(check: Callable[[], Any], bound: float = 10.0) -> Any:
    deadline = time.monotonic() + bound
    while not (value := check()):
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)
    return value


def _create(engine: Engine, health: types_pb2.Healthcheck | None = None,
            **fields: Any) -> str:
    req = engine_pb2.CreateContainerRequest(image="busybox", **fields)
    if health is not None:
        req.healthcheck.CopyFrom(health)
    return engine.create(req).id


FAST = dict(interval_ns=20 * MS, timeout_ns=S)


def _health(engine: Engine, cid: str) -> types_pb2.Health | None:
    state = engine.inspect(cid).state
    return state.health if state.HasField("health") else None


def _events(engine: Engine) -> list[str]:
    return [e.action for e in engine.events._history  # noqa: SLF001 - kept events
            if e.action.startswith("health_status")]


def test_probes_make_it_healthy_then_unhealthy_with_events(engine: Engine,
                                                          shim: ProbedShim) -> None:
    cid = _create(engine, _hc("CMD-SHELL", "check", retries=2, **FAST))
    assert engine.inspect(cid).healthcheck == _hc("CMD-SHELL", "check", retries=2, **FAST)
    assert _health(engine, cid) is None  # not started yet: no Health, as dockerd
    engine.start(cid)
    eventually(lambda: (h := _health(engine, cid)) and h.status == hc.HEALTHY)
    assert shim.probes[0] == ["/bin/sh", "-c", "check"]
    summary = engine.list().containers[0]
    assert (summary.health, summary.status.endswith("(healthy)")) == (hc.HEALTHY, True)
    shim.probe = lambda argv: (3, b"broken\n")
    health = eventually(lambda: (h := _health(engine, cid)) and h.status == hc.UNHEALTHY
                        and h)
    assert health.failing_streak >= 2
    assert health.log[-1].exit_code == 3 and health.log[-1].output == "broken\n"
    assert health.log[-1].start <= health.log[-1].end
    assert len(health.log) <= hc.MAX_LOG
    eventually(lambda: _events(engine)[:2] == ["health_status: healthy",
                                               "health_status: unhealthy"])
    probe = [e for e in engine.events._history if e.action.startswith("exec_")][:3]  # noqa: SLF001
    assert [e.action for e in probe] == ["exec_create: /bin/sh -c check",
                                         "exec_start: /bin/sh -c check", "exec_die"]
    assert probe[2].attributes["exitCode"] == "0"
    assert len({e.attributes["execID"] for e in probe}) == 1


def test_a_probe_past_its_timeout_fails(engine: Engine, shim: ProbedShim) -> None:
    release = threading.Event()
    shim.probe = lambda argv: (release.wait(5), (0, b""))[1]
    cid = _create(engine, _hc("CMD", "slow", interval_ns=20 * MS, timeout_ns=50 * MS,
                              retries=1))
    engine.start(cid)
    health = eventually(lambda: (h := _health(engine, cid)) and h.status == hc.UNHEALTHY
                        and h)
    release.set()
    assert health.log[0].exit_code == -1
    assert health.log[0].output == "Health check exceeded timeout (50ms)"


def test_image_check_applies_and_no_healthcheck_disables_it(
        engine: Engine, images: FakeImages, shim: ProbedShim) -> None:
    images.images["busybox"].config.healthcheck.CopyFrom(_hc("CMD", "img-probe", **FAST))
    cid = _create(engine)
    engine.start(cid)
    eventually(lambda: (h := _health(engine, cid)) and h.status == hc.HEALTHY)
    assert ["img-probe"] in shim.probes
    off = _create(engine, _hc("NONE"), name="off")
    engine.start(off)
    assert engine.inspect(off).healthcheck.test == ["NONE"]
    assert _health(engine, off) is None
    assert "(health" not in engine.list().containers[0].status


def test_a_restart_is_starting_again_and_a_stop_ends_probing(engine: Engine,
                                                            shim: ProbedShim) -> None:
    cid = _create(engine, _hc("CMD", "x", **FAST))
    engine.start(cid)
    eventually(lambda: (h := _health(engine, cid)) and h.status == hc.HEALTHY)
    engine.stop(cid)
    stopped = _health(engine, cid)
    # kept, but unhealthy once no probe runs, as dockerd's (no event for that)
    assert stopped is not None and stopped.status == hc.UNHEALTHY
    assert stopped.log[-1].exit_code == 0
    release = threading.Event()
    shim.probe = lambda argv: (release.wait(10), (1, b""))[1]  # held: no result yet
    time.sleep(0.01)  # a later start time than the run before (RFC 3339 ns)
    engine.start(cid)
    again = _health(engine, cid)
    assert again is not None and again.status == hc.STARTING
    assert again.failing_streak == 0
    release.set()
    eventually(lambda: (h := _health(engine, cid)) and h.status == hc.UNHEALTHY)
    # the event follows the status (saved first)
    eventually(lambda: _events(engine) == ["health_status: healthy",
                                           "health_status: unhealthy"])
    shim.exit(cid, 0)
    count = eventually(lambda: (n := len(shim.probes)) and engine.health._wakes.get(  # noqa: SLF001
        cid) is None and n)
    time.sleep(0.1)  # several intervals: no probe of a stopped container
    assert len(shim.probes) == count


def test_a_pause_makes_it_unhealthy_until_a_probe_after_the_unpause(
        engine: Engine, shim: ProbedShim) -> None:
    cid = _create(engine, _hc("CMD", "x", **FAST))
    engine.start(cid)
    eventually(lambda: (h := _health(engine, cid)) and h.status == hc.HEALTHY)
    shim.containers[cid]["status"] = "paused"  # the fake shim's Pause
    engine.health.halted(cid)  # what engine.pause does after the shim's
    count = len(shim.probes)
    assert _health(engine, cid).status == hc.UNHEALTHY  # type: ignore[union-attr]
    shim.containers[cid]["status"] = "running"
    eventually(lambda: (h := _health(engine, cid)) and h.status == hc.HEALTHY)
    eventually(lambda: len(shim.probes) > count)
    eventually(lambda: _events(engine) == ["health_status: healthy"] * 2)


def test_bad_healthcheck_is_refused_and_nothing_is_created(engine: Engine,
                                                          shim: ProbedShim) -> None:
    with pytest.raises(InvalidArgument, match="Retries in Healthcheck"):
        _create(engine, _hc("CMD", "x", retries=-1))
    with pytest.raises(InvalidArgument, match="Interval in Healthcheck"):
        _create(engine, _hc("CMD", "x", interval_ns=-S))
    assert engine.list(all=True).containers == []
    assert shim.containers == {}
    assert engine.health.store.ids() == []


def test_health_survives_a_gateway_restart(tmp_path: Path, images: FakeImages,
                                           shim: ProbedShim) -> None:
    first = Engine(Records(tmp_path / "gw"), images, shim)
    cid = _create(first, _hc("CMD", "x", interval_ns=20 * MS, retries=1))
    first.start(cid)
    eventually(lambda: (h := _health(first, cid)) and h.status == hc.HEALTHY)
    first.health.close()  # as the gateway's process ends
    shim.probe = lambda argv: (1, b"")
    second = Engine(Records(tmp_path / "gw"), images, shim)
    try:
        assert (h := _health(second, cid)) is not None and h.status in (hc.HEALTHY,
                                                                         hc.UNHEALTHY)
        second.restore()
        eventually(lambda: (h := _health(second, cid)) and h.status == hc.UNHEALTHY)
        second.remove(cid, force=True)
        assert second.health.store.ids() == []
    finally:
        second.health.close()
        second.records.close()
        first.records.close()
