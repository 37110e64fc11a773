"""`exec -d`: the CLI returns once the process runs; its output is dropped, it is reaped,
and it does not outlive the container."""

from __future__ import annotations

import time

import pytest

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
