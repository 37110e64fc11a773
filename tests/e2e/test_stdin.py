"""stdin through the whole engine: `echo hi | muelle run -i IMAGE cat`, attach, detach."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root

RUNTIMES = ["muelle", "runc", "crun"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_i_pipes_stdin(engine: Engine, image: str, runtime: str) -> None:
    proc = engine.cli("run", "--rm", "-i", "--runtime", runtime, image, "cat", input=b"hi\n")
    assert proc.stdout == "hi\n"
    proc = engine.cli("run", "--rm", "-i", image, "sh", "-c", "wc -c; exit 3",
                      input=b"x" * 200_000, check=False)
    assert (proc.returncode, proc.stdout.strip()) == (3, "200000")
    # Without -i the container's stdin is empty, whatever ours holds.
    assert engine.cli("run", "--rm", image, "cat", input=b"hi\n").stdout == ""


def _until(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def test_attach_detach_keys_and_reattach(engine: Engine, image: str) -> None:
    script = 'while read l; do [ "$l" = exit ] && break; echo got $l; done; echo bye'
    cid = engine.cli("run", "-d", "-i", image, "sh", "-c", script).stdout.strip()
    try:
        proc = engine.cli("attach", cid, input=b"one\n\x10\x11")
        assert proc.returncode == 0
        _until(lambda: "got one" in engine.cli("logs", cid).stdout)
        state = json.loads(engine.cli("inspect", cid).stdout)[0]["State"]
        assert state["Running"], state
        # A second client; our EOF does not end the container's stdin (run -d -i).
        proc = engine.cli("attach", cid, input=b"two\nexit\n", check=False)
        assert (proc.returncode, proc.stdout) == (0, "got two\nbye\n")
        assert engine.cli("logs", cid).stdout == "got one\ngot two\nbye\n"
    finally:
        engine.cli("rm", "-f", cid, check=False)


def test_attach_errors(engine: Engine, image: str) -> None:
    proc = engine.cli("attach", "nosuch", check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    proc = engine.cli("attach", "--detach-keys", "ctrl-1", "nosuch", check=False)
    assert proc.returncode == 1 and "detach keys" in proc.stderr


def test_create_i_then_start_ai(engine: Engine, image: str) -> None:
    cid = engine.cli("create", "-i", image, "sh", "-c", "cat; echo end").stdout.strip()
    try:
        proc = engine.cli("start", "-ai", cid, input=b"first\n")
        assert (proc.returncode, proc.stdout) == (0, "first\nend\n")
    finally:
        engine.cli("rm", "-f", cid, check=False)


def test_attach_to_a_stopped_container_says_start_it_first(engine: Engine, image: str) -> None:
    cid = engine.cli("create", image, "true").stdout.strip()
    try:
        proc = engine.cli("attach", cid, check=False, timeout=30)
        assert (proc.returncode, proc.stderr) == (
            1, "You cannot attach to a stopped container, start it first\n")
    finally:
        engine.cli("rm", "-f", cid)
