"""`exec -d`: the CLI returns once the process runs; its output is dropped, it is reaped,
and it does not outlive the container."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from engine import launcher
from tests.support.engine import Engine, processes_mentioning

pytestmark = pytest.mark.root


def _wait_for(engine: Engine, cid: str, path: str) -> str:
    for _ in range(200):
        proc = engine.cli("exec", cid, "cat", path, check=False)
        if proc.returncode == 0:
            return proc.stdout
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_exec_detached(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", image, "sleep", "60").stdout.strip()
    try:
        proc = engine.cli("exec", "-d", cid, "sh", "-c",
                          "echo started > /tmp/a; yes | head -c 1000000; sleep 1; "
                          "echo done > /tmp/b")
        assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
        assert _wait_for(engine, cid, "/tmp/a") == "started\n"
        assert _wait_for(engine, cid, "/tmp/b") == "done\n"
        # finished and reaped: no zombie in the container, its output not in the logs
        ps = engine.cli("exec", cid, "ps", "-o", "stat,args").stdout
        assert not [line for line in ps.splitlines()[1:] if line.startswith("Z")], ps
        assert engine.cli("logs", cid).stdout == ""
    finally:
        engine.cli("rm", "-f", cid)


def _wait_processes(marker: str, present: bool) -> list[int]:
    for _ in range(200):
        found = processes_mentioning(marker)
        if bool(found) == present:
            return found
        time.sleep(0.05)
    return processes_mentioning(marker)


def test_detached_process_ends_with_the_container(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", image, "sleep", "60").stdout.strip()
    seconds = str(700000 + int(cid[:4], 16))  # a command line no other process has
    try:
        engine.cli("exec", "-d", cid, "sleep", seconds)
        assert _wait_processes(seconds, present=True)
        engine.cli("stop", "-t", "1", cid)
        assert _wait_processes(seconds, present=False) == []
    finally:
        engine.cli("rm", "-f", cid)


def test_exec_detached_errors(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", image, "sleep", "60").stdout.strip()
    try:
        missing = engine.cli("exec", "-d", cid, "no-such-command", check=False)
        assert missing.returncode == 127
        assert missing.stderr.startswith("OCI runtime exec failed:")
        assert "no-such-command" in missing.stderr and "Traceback" not in missing.stderr
        engine.cli("stop", "-t", "1", cid)
        stopped = engine.cli("exec", "-d", cid, "true", check=False)
        assert stopped.returncode != 0 and "not running" in stopped.stderr
    finally:
        engine.cli("rm", "-f", cid)


def _engine_zombies(engine: Engine) -> list[int]:
    """Zombies on the host whose parent is one of this engine's processes."""
    parents = set(processes_mentioning(str(engine.dir)))
    assert parents
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) in parents:
            zombies.append(int(stat.parent.name))
    return zombies


def _shown(engine: Engine, cid: str, text: str) -> tuple[bool, bool]:
    """Whether `top` and `exec ps` list a process whose command line has ``text``."""
    top = engine.cli("top", cid).stdout
    ps = engine.cli("exec", cid, "ps", "-o", "pid,stat,args").stdout
    return text in top, text in ps


@pytest.mark.parametrize("flags", [[], ["-t"], ["-i"]])
def test_detached_process_is_listed_then_reaped(engine: Engine, image: str,
                                                flags: list[str]) -> None:
    """`top` and `exec ps` show it while it runs (with -t or -i too: no terminal or stdin
    to wait for); once it exits it is gone, not a zombie, in the container and on the host."""
    cid = engine.cli("run", "-d", image, "sleep", "60").stdout.strip()
    seconds = str(800000 + int(cid[:4], 16))  # a command line no other process has
    try:
        proc = engine.cli("exec", "-d", *flags, cid, "sh", "-c",
                          f"sleep {seconds} & echo $! > /tmp/pid; wait")
        assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
        assert _wait_processes(seconds, present=True)
        assert _shown(engine, cid, f"sleep {seconds}") == (True, True)
        engine.cli("exec", cid, "sh", "-c", "kill $(cat /tmp/pid)")
        assert _wait_processes(seconds, present=False) == []
        for _ in range(200):  # the shell ends after its child
            ps = engine.cli("exec", cid, "ps", "-o", "stat,args").stdout
            if "wait" not in ps:
                break
            time.sleep(0.05)
        assert "wait" not in ps and "sleep 60" in ps, ps
        assert not [line for line in ps.splitlines()[1:] if line.startswith("Z")], ps
        assert _shown(engine, cid, f"sleep {seconds}") == (False, False)
        for _ in range(100):  # the shim reaps the runtime (and its subreaper) in a thread
            if not _engine_zombies(engine):
                break
            time.sleep(0.05)
        assert _engine_zombies(engine) == []
        state = json.loads(engine.cli("inspect", cid).stdout)[0]["State"]
        assert state["Status"] == "running"
    finally:
        engine.cli("rm", "-f", cid)


def test_detached_process_survives_a_shim_restart(engine: Engine, image: str) -> None:
    """Its output goes nowhere, so it does not die of SIGPIPE when the shim that started it
    is killed -9 (running containers keep running when a service restarts)."""
    cid = engine.cli("run", "-d", image, "sleep", "120").stdout.strip()
    seconds = str(900000 + int(cid[:4], 16))
    try:
        engine.cli("exec", "-d", cid, "sh", "-c",
                   f"sleep {seconds} & while true; do echo out; echo err >&2; "
                   "date > /tmp/tick; sleep 0.05; done")
        assert _wait_processes(seconds, present=True)
        shim = launcher.running_pid(engine.cfg, "shim")
        assert shim is not None
        os.kill(shim, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(shim, 0)  # ours (the launcher ran it from this process)
        for _ in range(200):
            if launcher.running_pid(engine.cfg, "shim") is None:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # many writes with no shim
        launcher.start(engine.cfg, str(engine.config_file), services=("shim",))
        ps = engine.cli("exec", cid, "ps", "-o", "stat,args").stdout
        assert "while true" in ps and f"sleep {seconds}" in ps, ps
        engine.cli("exec", cid, "rm", "/tmp/tick")
        _wait_for(engine, cid, "/tmp/tick")  # still writing, and its loop goes on
        engine.cli("stop", "-t", "1", cid)
        assert _wait_processes(seconds, present=False) == []
    finally:
        engine.cli("rm", "-f", cid, check=False)
