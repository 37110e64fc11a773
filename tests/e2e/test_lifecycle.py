"""pause / unpause / restart, the same under every runtime."""

from __future__ import annotations

import os
import time

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root

RUNTIMES = ["muelle", "runc", "crun"]
TICKER = "echo started; while :; do echo tick; sleep 0.05; done"


def _ticks(engine: Engine, name: str) -> int:
    return engine.cli("logs", name).stdout.count("tick")


def _wait(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pause_freezes_and_unpause_thaws(engine: Engine, image: str, runtime: str) -> None:
    name = f"pause-{runtime}-{os.getpid()}"
    engine.cli("run", "-d", "--name", name, "--runtime", runtime, image, "sh", "-c", TICKER)
    try:
        _wait(lambda: _ticks(engine, name) > 2)
        assert engine.cli("pause", name).stdout.strip() == name
        assert "(Paused)" in engine.cli("ps").stdout
        assert '"Paused": true' in engine.cli("inspect", name).stdout
        frozen = _ticks(engine, name)
        time.sleep(0.5)
        assert _ticks(engine, name) == frozen  # nothing ran while frozen
        again = engine.cli("pause", name, check=False)
        assert again.returncode == 1 and "already paused" in again.stderr
        assert engine.cli("unpause", name).stdout.strip() == name
        _wait(lambda: _ticks(engine, name) > frozen)
        bad = engine.cli("unpause", name, check=False)
        assert bad.returncode == 1 and "is not paused" in bad.stderr
        # A paused container can be killed: SIGKILL lands when it is thawed.
        engine.cli("pause", name)
        engine.cli("kill", name)
        assert engine.cli("wait", name).stdout.strip() == "137"
    finally:
        engine.cli("rm", "-f", name, check=False)


def test_rm_force_of_a_paused_container(engine: Engine, image: str) -> None:
    name = f"pause-rm-{os.getpid()}"
    engine.cli("run", "-d", "--name", name, image, "sleep", "1000")
    engine.cli("pause", name)
    engine.cli("rm", "-f", name)
    assert name not in engine.cli("ps", "-a").stdout


@pytest.mark.parametrize("runtime", ["muelle", "runc"])
def test_restart_runs_the_container_again(engine: Engine, image: str, runtime: str) -> None:
    name = f"restart-{runtime}-{os.getpid()}"
    engine.cli("run", "-d", "--name", name, "--runtime", runtime, image, "sh", "-c",
               'echo x >> /count; echo "started $(wc -l < /count)"; trap "exit 0" TERM; '
               "while :; do sleep 0.05; done")
    try:
        _wait(lambda: "started" in engine.cli("logs", name).stdout)
        assert engine.cli("restart", "-t", "5", name).stdout.strip() == name
        _wait(lambda: engine.cli("logs", name).stdout.count("started") == 2)
        assert '"Running": true' in engine.cli("inspect", name).stdout
        engine.cli("stop", "-t", "5", name)
        engine.cli("start", name)
        _wait(lambda: engine.cli("logs", name).stdout.count("started") == 3)
        # Same container, same writable layer: each run saw the file of the one before.
        log = engine.cli("logs", name).stdout.split()
        assert [log[i + 1] for i, w in enumerate(log) if w == "started"] == ["1", "2", "3"]
    finally:
        engine.cli("rm", "-f", name, check=False)
    missing = engine.cli("restart", "no-such-container-x", check=False)
    assert missing.returncode == 1 and "No such container" in missing.stderr
