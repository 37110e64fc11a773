"""pause / unpause / restart, the same under every runtime."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

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


def _zombie_children(pid: int) -> list[int]:
    """Children of ``pid`` (seen from the host) that are zombies."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    zombies = []
    for child in children:
        try:
            state = next(line for line in Path(f"/proc/{child}/status").read_text().splitlines()
                         if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if "Z" in state.split()[1]:
            zombies.append(int(child))
    return zombies


def _pid_of(engine: Engine, name: str) -> int:
    return int(json.loads(engine.cli("inspect", name).stdout)[0]["State"]["Pid"])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_init_reaps_zombies_and_forwards_signals(engine: Engine, image: str,
                                                 runtime: str) -> None:
    # An orphan whose parent exits is re-parented to pid 1. Here pid 1 is `sleep`, which
    # never reaps: the orphan stays a zombie. With --init the init is pid 1 and reaps it.
    script = "(sleep 0.1 &); exec sleep 1000"
    plain, inited = f"noinit-{runtime}-{os.getpid()}", f"init-{runtime}-{os.getpid()}"
    engine.cli("run", "-d", "--name", plain, "--runtime", runtime, image, "sh", "-c", script)
    engine.cli("run", "-d", "--init", "--name", inited, "--runtime", runtime, image,
               "sh", "-c", script)
    try:
        _wait(lambda: len(_zombie_children(_pid_of(engine, plain))) == 1)
        init_pid = _pid_of(engine, inited)
        assert Path(f"/proc/{init_pid}/comm").read_text().strip() == "docker-init"
        # Its orphan is gone altogether: the init's one child left is the command.
        _wait(lambda: len(Path(f"/proc/{init_pid}/task/{init_pid}/children")
                          .read_text().split()) == 1)
        assert _zombie_children(init_pid) == []
        # The init forwards SIGTERM to sleep, which dies of it.
        engine.cli("stop", "-t", "20", inited)
        # 143: sleep died of the forwarded SIGTERM, not of the SIGKILL after the timeout.
        assert engine.cli("wait", inited).stdout.strip() == "143"
    finally:
        engine.cli("rm", "-f", plain, inited, check=False)
