"""A container that runs longer than monitor.HANDOFF_AFTER is watched by the native monitor
tail (services/shim/native/muelle-monitor.c): it keeps every property of the monitor.
Logs go on (and rotate), the shim can be killed and restarted under it, stop and an exit
give their codes, the OOM killer is reported, and rm leaves nothing.

The container prints what the test drops into its rootfs at /tmp/say (as in
test_live_restore) and exits with its code when /tmp/exit appears; TERM exits with it too.
"""

from __future__ import annotations

import functools
import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from engine import launcher
from services.shim.monitor import NATIVE_TAIL
from tests.e2e.test_live_restore import _say
from tests.e2e.test_tty import Terminal
from tests.support.engine import CLI, Engine
from tests.support.faults import kill9
from tests.support.faults import wait_for as _wait_for

pytestmark = pytest.mark.root

SCRIPT = ('echo started; trap "echo stopping; exit {code}" TERM; '
          'while [ ! -e /tmp/exit ]; do '
          '[ -e /tmp/say ] && cat /tmp/say && rm /tmp/say; sleep 0.1; done; '
          'echo exiting; exit {code}')


def _cdir(engine: Engine, cid: str) -> Path:
    return engine.root / "shim" / "containers" / cid


def _native(engine: Engine, cid: str) -> bool:
    """Whether the container's monitor now executes the native tail."""
    try:
        pid = int((_cdir(engine, cid) / "monitor.pid").read_text())
        return os.readlink(f"/proc/{pid}/exe") == str(NATIVE_TAIL)
    except (OSError, ValueError):
        return False


def _run(engine: Engine, name: str, *args: str) -> str:
    out = engine.cli("run", "-d", "--name", name, *args).stdout
    return out.strip().splitlines()[-1]


@pytest.mark.parametrize("runtime", ["muelle", "runc"])
def test_handed_over_monitor_keeps_its_properties(engine: Engine, image: str,
                                                  runtime: str) -> None:
    assert NATIVE_TAIL.exists(), "run make setup: it builds the native monitor tail"
    names = [f"tail-{runtime}-{os.getpid()}-{n}" for n in range(2)]
    try:
        ids = [_run(engine, name, "--runtime", runtime, "--log-opt", "max-size=2k",
                    "--log-opt", "max-file=2", image, "sh", "-c", SCRIPT.format(code=code))
               for name, code in zip(names, (5, 6), strict=True)]
        for cid in ids:
            _wait_for(functools.partial(_native, engine, cid), what="the hand-over")
            _say(engine, cid, "after-handover")

        kill9(engine, "shim")
        _wait_for(lambda: launcher.running_pid(engine.cfg, "shim") is None)
        for cid in ids:
            _say(engine, cid, "shim-down")
        (_cdir(engine, ids[1]) / "rootfs" / "tmp" / "exit").touch()
        _wait_for((_cdir(engine, ids[1]) / "status.json").exists)
        launcher.start(engine.cfg, str(engine.config_file), services=("shim",))

        state = json.loads(engine.cli("inspect", names[0]).stdout)[0]["State"]
        assert state["Running"] is True
        # Enough output to rotate the 2 KiB log: the tail rotates as the Python writer does.
        for n in range(40):
            _say(engine, ids[0], f"line-{n:02d}-" + "x" * 60)
        engine.cli("stop", "-t", "10", names[0])
        assert engine.cli("wait", names[0]).stdout.strip() == "5"
        assert engine.cli("wait", names[1]).stdout.strip() == "6"
        logs = engine.cli("logs", names[1]).stdout.splitlines()
        assert logs == ["started", "after-handover", "shim-down", "exiting"], logs
        tail = engine.cli("logs", names[0]).stdout.splitlines()
        assert tail[-1] == "stopping" and tail[-2].startswith("line-39-"), tail[-3:]
        assert (_cdir(engine, ids[0]) / "container.log.1").exists()
        assert not (_cdir(engine, ids[0]) / "container.log.2").exists()
    finally:
        engine.cli("rm", "-f", *names, check=False)
    assert not [n for n in names if n in engine.cli("ps", "-a").stdout]


def test_handed_over_monitor_reports_oom(engine: Engine, image: str) -> None:
    name = f"tail-oom-{os.getpid()}"
    try:
        # Allocates only after the hand-over: the native tail reads the OOM kill.
        cid = _run(engine, name, "-m", "32m", image, "sh", "-c",
                   "echo up; while [ ! -e /tmp/go ]; do sleep 0.1; done; "
                   "x=a; while true; do x=$x$x; done")
        _wait_for(lambda: _native(engine, cid))
        (_cdir(engine, cid) / "rootfs" / "tmp" / "go").touch()
        assert engine.cli("wait", name, timeout=60).stdout.strip() == "137"
        state = json.loads(engine.cli("inspect", name).stdout)[0]["State"]
        assert state["OOMKilled"] is True, state
    finally:
        engine.cli("rm", "-f", name, check=False)


def _read_until(fd: int, seen: bytearray, text: bytes, timeout: float = 60) -> None:
    """Read ``fd`` into ``seen`` until it ends with ``text`` (or EOF if ``text`` is b"")."""
    deadline = time.monotonic() + timeout
    while not (text and seen.endswith(text)):
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} not read: {bytes(seen)!r}"
        if select.select([fd], [], [], left)[0]:
            data = os.read(fd, 65536)
            if not data:
                assert not text, f"EOF before {text!r}: {bytes(seen)!r}"
                return
            seen += data


def _shim_restarted(engine: Engine) -> None:
    kill9(engine, "shim")
    launcher.start(engine.cfg, str(engine.config_file), services=("shim",))


@pytest.mark.parametrize("runtime", ["muelle", "runc"])
def test_handed_over_stdin_relay(engine: Engine, image: str, runtime: str) -> None:
    """-i: the stdin relay goes on in the native tail, an attached client's connection and
    all (docker run -i piped: its EOF ends cat), and after a kill -9 of the shim."""
    name = f"tail-i-{runtime}-{os.getpid()}"
    piped = subprocess.Popen([CLI, "run", "-i", "--name", name, "--runtime", runtime, image,
                              "sh", "-c", "cat; echo cat-ended; exit 4"], env=engine.env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert piped.stdin is not None and piped.stdout is not None
    out, seen = piped.stdout.fileno(), bytearray()
    detached = f"tail-di-{runtime}-{os.getpid()}"
    try:
        piped.stdin.write(b"before\n")
        piped.stdin.flush()
        _read_until(out, seen, b"before\n")
        cid = json.loads(engine.cli("inspect", name).stdout)[0]["Id"]
        _wait_for(functools.partial(_native, engine, cid), what="the hand-over")
        piped.stdin.write(b"after\n")
        piped.stdin.flush()
        _read_until(out, seen, b"after\n")
        piped.stdin.close()  # stdin_once: our EOF is the container's
        _read_until(out, seen, b"")
        assert seen == b"before\nafter\ncat-ended\n"
        assert piped.wait(60) == 4

        # run -d -i: attach, detach, kill -9 the shim, attach again.
        script = 'while read l; do [ "$l" = exit ] && break; echo got $l; done; exit 6'
        cid = _run(engine, detached, "-i", "--runtime", runtime, image, "sh", "-c", script)
        _wait_for(functools.partial(_native, engine, cid), what="the hand-over")
        assert engine.cli("attach", detached, input=b"one\n\x10\x11").returncode == 0
        _wait_for(lambda: "got one" in engine.cli("logs", detached).stdout)
        _shim_restarted(engine)
        proc = engine.cli("attach", detached, input=b"two\nexit\n", check=False)
        assert (proc.returncode, proc.stdout) == (6, "got two\n"), proc
        assert engine.cli("wait", detached).stdout.strip() == "6"
        assert engine.cli("logs", detached).stdout == "got one\ngot two\n"
        assert engine.cli("logs", name).stdout == "before\nafter\ncat-ended\n"
    finally:
        if piped.poll() is None:
            piped.kill()
        piped.wait()
        engine.cli("rm", "-f", name, detached, check=False)


@pytest.mark.parametrize("runtime", ["muelle", "runc"])
def test_handed_over_terminal(engine: Engine, image: str, runtime: str) -> None:
    """-t: the pty master, typing and resizes go on in the native tail, across a kill -9 of
    the shim; the session is logged and its exit code recorded."""
    name = f"tail-t-{runtime}-{os.getpid()}"
    term = Terminal(engine, "run", "-it", "--name", name, "--runtime", runtime, image, "sh")
    try:
        term.expect(b"# ")
        cid = json.loads(engine.cli("inspect", name).stdout)[0]["Id"]
        _wait_for(functools.partial(_native, engine, cid), what="the hand-over")
        term.send(b"stty size\r")
        term.expect(b"30 100\r\n")
        term.resize(50, 120)
        term.send(b"stty size\r")
        term.expect(b"50 120\r\n")
        term.send(b"echo typed-$((6*7))\r")
        term.expect(b"typed-42\r\n")
        term.send(b"\x10\x11")  # detach
        assert term.wait() == 0
        term.close()

        _shim_restarted(engine)
        term = Terminal(engine, "attach", name, rows=40, cols=90)
        term.wait_raw()
        term.send(b"stty size\r")
        term.expect(b"40 90\r\n")  # the attach sent its size through the new shim
        term.send(b"exit 3\r")
        assert term.wait() == 3
        assert engine.cli("wait", name).stdout.strip() == "3"
        assert "typed-42" in engine.cli("logs", name).stdout
    finally:
        term.close()
        engine.cli("rm", "-f", name, check=False)
