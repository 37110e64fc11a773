"""Health checks go on across a gateway restart: the status written before it stays, the
probing resumes (a container that turns bad becomes unhealthy), a restart policy's start
is "starting" again."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from engine import launcher
from tests.support.engine import Engine

WAIT = 60.0


def _until(look: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while not (value := look()):
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.1)
    return value


def _health(engine: Engine, name: str) -> dict[str, Any] | None:
    state = json.loads(engine.cli("inspect", name).stdout)[0]["State"]
    return state.get("Health")  # type: ignore[no-any-return]


def _status_is(engine: Engine, name: str, status: str) -> Callable[[], bool]:
    return lambda: (h := _health(engine, name)) is not None and h["Status"] == status


def test_probing_resumes_after_a_gateway_restart(engine: Engine, image: str) -> None:
    name = f"hc-restore-{uuid.uuid4().hex[:6]}"
    try:
        engine.cli("run", "-d", "--name", name, "--health-cmd", "test ! -f /tmp/bad",
                   "--health-interval", "1s", "--health-retries", "1", image, "sleep", "300")
        _until(_status_is(engine, name, "healthy"), "healthy")

        launcher.stop(engine.cfg, services=("gateway",))
        launcher.start(engine.cfg, str(engine.config_file), services=("gateway",))

        health = _health(engine, name)
        assert health is not None and health["Status"] == "healthy"  # kept on disk
        engine.cli("exec", name, "touch", "/tmp/bad")
        _until(_status_is(engine, name, "unhealthy"), "unhealthy after the restart")
        assert "(unhealthy)" in engine.cli("ps", "--filter", f"name={name}").stdout

        # A start after it: "starting" again, then healthy once the test passes.
        engine.cli("exec", name, "rm", "/tmp/bad")
        engine.cli("restart", "-t", "0", name)
        _until(_status_is(engine, name, "healthy"), "healthy after the restart")
    finally:
        engine.cli("rm", "-f", name, check=False)


def test_a_restart_policy_run_is_probed(engine: Engine, image: str) -> None:
    """The shim restarts it by itself: the gateway's monitor sees the new run."""
    name = f"hc-policy-{uuid.uuid4().hex[:6]}"
    try:
        engine.cli("run", "-d", "--name", name, "--restart", "always", "--health-cmd",
                   "true", "--health-interval", "1s", image, "sh", "-c", "sleep 2; exit 3")

        def probed_in_a_later_run() -> bool:
            info = json.loads(engine.cli("inspect", name).stdout)[0]
            health = info["State"].get("Health")
            return bool(info["RestartCount"] >= 1 and info["State"]["Running"] and health
                        and health["Log"] and health["Log"][-1]["Start"] >
                        info["State"]["StartedAt"] and health["Status"] == "healthy")

        _until(probed_in_a_later_run, "probed after a restart by the policy")
    finally:
        engine.cli("rm", "-f", name, check=False)
