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


def test_logs_rotate_by_default_and_by_log_opt(engine: Engine, image: str) -> None:
    name = f"rotate-{os.getpid()}"
    engine.cli("run", "--name", name, "--log-opt", "max-size=2k", "--log-opt", "max-file=2",
               image, "sh", "-c", "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line $i; done")
    try:
        cid = engine.cli("inspect", name).stdout.split('"Id": "')[1][:64]
        files = sorted(p.name for p in (engine.root / "shim" / "containers" / cid).iterdir()
                       if p.name.startswith("container.log"))
        assert files == ["container.log", "container.log.1"], files
        lines = engine.cli("logs", name).stdout.split("\n")[:-1]
        assert lines[-1] == "line 300" and lines[0] != "line 1"  # the oldest rotated out
        numbers = [int(line.split()[1]) for line in lines]
        assert numbers == list(range(numbers[0], 301))
        assert engine.cli("logs", "--tail", "1", name).stdout == "line 300\n"
    finally:
        engine.cli("rm", "-f", name, check=False)
    bad = engine.cli("run", "--rm", "--log-opt", "max-size=lots", image, "true", check=False)
    assert bad.returncode == 125 and "max-size" in bad.stderr
    bad = engine.cli("run", "--rm", "--log-opt", "colour=blue", image, "true", check=False)
    assert bad.returncode == 125 and "unknown log opt 'colour'" in bad.stderr


def test_restart_policies(engine: Engine, image: str) -> None:
    pid = os.getpid()
    failing, always = f"onfail-{pid}", f"always-{pid}"
    engine.cli("run", "-d", "--name", failing, "--restart", "on-failure:2", image,
               "sh", "-c", "echo run; exit 3")
    engine.cli("run", "-d", "--name", always, "--restart", "always", image,
               "sh", "-c", "echo run; sleep 0.2")
    try:
        def detail(name: str) -> dict:
            return json.loads(engine.cli("inspect", name).stdout)[0]  # type: ignore[no-any-return]

        # on-failure:2: the first run and two restarts, then it stays exited with 3.
        _wait(lambda: engine.cli("logs", failing).stdout.count("run") == 3)
        _wait(lambda: not detail(failing)["State"]["Running"])
        time.sleep(1)
        got = detail(failing)
        assert got["RestartCount"] == 2 and got["State"]["ExitCode"] == 3
        assert got["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                      "MaximumRetryCount": 2}
        assert engine.cli("logs", failing).stdout.count("run") == 3
        # always: keeps coming back until stopped by hand; then it stays stopped.
        _wait(lambda: detail(always)["RestartCount"] >= 2)
        engine.cli("stop", "-t", "2", always)
        count = engine.cli("logs", always).stdout.count("run")
        time.sleep(1.5)
        assert not detail(always)["State"]["Running"]
        assert engine.cli("logs", always).stdout.count("run") == count
        # start by hand: policy applies again
        engine.cli("start", always)
        _wait(lambda: engine.cli("logs", always).stdout.count("run") >= count + 2)
    finally:
        engine.cli("rm", "-f", failing, always, check=False)
    bad = engine.cli("run", "--rm", "--restart", "always", image, "true", check=False)
    assert bad.returncode == 125 and "Conflicting options" in bad.stderr
    bad = engine.cli("run", "--restart", "sometimes", image, "true", check=False)
    assert bad.returncode == 125 and "invalid restart policy" in bad.stderr


def test_stats_and_top(engine: Engine, image: str) -> None:
    busy, idle = f"busy-{os.getpid()}", f"idle-{os.getpid()}"
    engine.cli("run", "-d", "--name", busy, "-m", "64m", "--pids-limit", "20", image,
               "sh", "-c", "while :; do :; done")
    engine.cli("run", "-d", "--name", idle, image, "sleep", "1000")
    try:
        out = engine.cli("stats", "--no-stream").stdout.splitlines()
        rows = {line.split()[1]: line.split() for line in out[1:]}
        assert {busy, idle} <= set(rows)
        # How much of a CPU a spinning shell gets depends on the machine's load; that it
        # gets some, and more than a sleeping one, does not.
        busy_cpu, idle_cpu = (float(rows[c][2].rstrip("%")) for c in (busy, idle))
        assert busy_cpu > 0 and idle_cpu < busy_cpu, (busy_cpu, idle_cpu)
        assert rows[busy][5] == "64MiB" and rows[busy][-1] == "1"  # limit; one task
        only = engine.cli("stats", "--no-stream", idle).stdout.splitlines()
        assert len(only) == 2 and idle in only[1]
        top = engine.cli("top", idle).stdout.splitlines()
        assert top[0].split()[:3] == ["USER", "PID", "PPID"] and "sleep 1000" in top[1]
        stopped = engine.cli("stop", "-t", "1", idle)
        assert stopped.returncode == 0
        bad = engine.cli("top", idle, check=False)
        assert bad.returncode == 1 and "is not running" in bad.stderr
    finally:
        engine.cli("rm", "-f", busy, idle, check=False)
