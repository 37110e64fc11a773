"""Config.Healthcheck and State.Health in the Docker API's JSON, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi import container_json
from services.dockerapi.create import create_request
from services.dockerapi.errors import ApiError

S = 1_000_000_000


def test_cli_health_flags_map_to_the_request() -> None:
    # what docker CLI 20.10 sends for --health-cmd 'curl -f x' --health-interval 1s
    # --health-timeout 500ms --health-retries 2 --health-start-period 3s
    body = {"Image": "busybox", "Healthcheck": {
        "Test": ["CMD-SHELL", "curl -f x"], "Interval": S, "Timeout": S // 2,
        "StartPeriod": 3 * S, "Retries": 2}}
    req = create_request(body, "")
    assert req.HasField("healthcheck")
    assert req.healthcheck == types_pb2.Healthcheck(
        test=["CMD-SHELL", "curl -f x"], interval_ns=S, timeout_ns=S // 2,
        start_period_ns=3 * S, retries=2)


def test_no_healthcheck_and_absent() -> None:
    req = create_request({"Image": "b", "Healthcheck": {"Test": ["NONE"]}}, "")
    assert list(req.healthcheck.test) == ["NONE"]
    assert not create_request({"Image": "b"}, "").HasField("healthcheck")
    assert not create_request({"Image": "b", "Healthcheck": None}, "").HasField("healthcheck")


@pytest.mark.parametrize(("health", "message"), [
    ("x", "Healthcheck must be an object"),
    ({"Test": "CMD true"}, None),  # a string is one word, as for Cmd
    ({"Test": [1]}, "Healthcheck.Test must be a list of strings"),
    ({"Interval": "1s"}, "Interval must be an integer"),
    ({"Retries": 1.5}, "Retries must be an integer"),
    ({"Timeout": 2**70}, "Healthcheck.Timeout is out of range"),
    ({"Retries": 2**40}, "Healthcheck.Retries is out of range"),
])
def test_wrong_types_are_400(health: Any, message: str | None) -> None:
    if message is None:
        create_request({"Image": "b", "Healthcheck": health}, "")
        return
    with pytest.raises(ApiError, match=message) as caught:
        create_request({"Image": "b", "Healthcheck": health}, "")
    assert caught.value.status == 400


def test_inspect_shows_dockers_shapes() -> None:
    detail = engine_pb2.ContainerDetail(
        id="c" * 64, name="web", healthcheck=types_pb2.Healthcheck(
            test=["CMD", "true"], interval_ns=S, retries=3))
    detail.state.CopyFrom(engine_pb2.ContainerState(status="running", running=True))
    out = container_json.inspect(detail, None)
    assert out["Config"]["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": S,
                                            "Retries": 3}
    assert "Health" not in out["State"]
    detail.state.health.CopyFrom(types_pb2.Health(
        status="unhealthy", failing_streak=3, log=[types_pb2.HealthcheckResult(
            start="2026-12-06T10:00:00.1Z", end="2026-12-06T10:00:00.2Z", exit_code=1,
            output="no\n")]))
    assert container_json.inspect(detail, None)["State"]["Health"] == {
        "Status": "unhealthy", "FailingStreak": 3, "Log": [{
            "Start": "2026-12-06T10:00:00.1Z", "End": "2026-12-06T10:00:00.2Z",
            "ExitCode": 1, "Output": "no\n"}]}
    assert "Healthcheck" not in container_json.inspect(
        engine_pb2.ContainerDetail(id="d" * 64), None)["Config"]
