"""Live restore: kill -9 the shim service while five containers run; after a restart every
container is still running, listed, logging, stoppable, with the right exit codes. A sixth
container that exits while the shim is down is reported stopped with its own code.

The test talks to the containers while the shim is down through files it drops into each
container's rootfs from the host (the overlay's merged dir): the container prints what it
finds in /tmp/say, and exits with its code when /tmp/exit appears."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import launcher
from tests.support.engine import Engine

pytestmark = pytest.mark.root

# Logs a line, then polls for /tmp/say (printed, then removed) and /tmp/exit (exit with the
# code); TERM exits with the code too.
SCRIPT = ('echo started-{n}; trap "echo stopping-{n}; exit {code}" TERM; '
          'while [ ! -e /tmp/exit ]; do '
          '[ -e /tmp/say ] && cat /tmp/say && rm /tmp/say; sleep 0.1; done; '
          'echo exiting-{n}; exit {code}')
RUNTIMES = ("muelle", "runc", "crun", "muelle", "runc", "crun")


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _rootfs(engine: Engine, cid: str) -> Path:
    return engine.root / "shim" / "containers" / cid / "rootfs"


def _say(engine: Engine, cid: str, text: str) -> None:
    """Make the container print ``text``, and wait until it has read it."""
    path = _rootfs(engine, cid) / "tmp" / "say"
    tmp = path.with_name(".say")
    tmp.write_text(text + "\n")
    tmp.rename(path)  # atomically: the container never reads half a line
    _wait_for(lambda: not path.exists())


def _logged(engine: Engine, name: str, line: str) -> bool:
    return line in engine.cli("logs", name).stdout


def _state(engine: Engine, name: str) -> dict:
    return json.loads(engine.cli("inspect", name).stdout)[0]["State"]


def test_shim_kill9_keeps_five_containers(engine: Engine, image: str) -> None:
    codes = [3, 4, 5, 6, 7, 9]
    names = [f"live-{os.getpid()}-{n}" for n in range(6)]
    ids = []
    for n, (name, code) in enumerate(zip(names, codes, strict=True)):
        out = engine.cli("run", "-d", "--name", name, "--runtime", RUNTIMES[n], image,
                         "sh", "-c", SCRIPT.format(n=n, code=code)).stdout
        ids.append(out.strip().splitlines()[-1])
    running, gone = names[:5], names[5]
    try:
        for n, name in enumerate(names):
            _wait_for(functools.partial(_logged, engine, name, f"started-{n}"))
        shim = launcher.running_pid(engine.cfg, "shim")
        assert shim is not None
        os.kill(shim, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(shim, 0)  # ours (the launcher ran it from this process)
        _wait_for(lambda: launcher.running_pid(engine.cfg, "shim") is None)

        # The containers do not notice: their monitors own them and write their logs.
        for n, cid in enumerate(ids):
            _say(engine, cid, f"while-down-{n}")
        # One exits meanwhile; its monitor records the code with no shim to tell.
        (_rootfs(engine, ids[5]) / "tmp" / "exit").touch()
        monitor = engine.root / "shim" / "containers" / ids[5] / "status.json"
        _wait_for(monitor.exists)

        launcher.start(engine.cfg, str(engine.config_file), services=("shim",))

        listed = engine.cli("ps").stdout
        for name in running:
            assert name in listed
            assert _state(engine, name)["Running"] is True
        assert gone not in listed and gone in engine.cli("ps", "-a").stdout
        state = _state(engine, gone)
        assert state["Running"] is False and state["ExitCode"] == 9, state
        assert "exiting-5" in engine.cli("logs", gone).stdout

        for n, cid in enumerate(ids[:5]):
            _say(engine, cid, f"after-restart-{n}")
        # Two exit on their own after the restart, three are stopped (TERM -> their code).
        for cid in ids[:2]:
            (_rootfs(engine, cid) / "tmp" / "exit").touch()
        for n, (name, code) in enumerate(zip(running, codes, strict=False)):
            if n >= 2:
                engine.cli("stop", "-t", "10", name)
            assert engine.cli("wait", name).stdout.strip() == str(code)
            assert _state(engine, name)["ExitCode"] == code
            log = engine.cli("logs", name).stdout.splitlines()
            last = f"exiting-{n}" if n < 2 else f"stopping-{n}"
            # In order: before the kill, while the shim was down, after the restart, the end.
            assert log == [f"started-{n}", f"while-down-{n}", f"after-restart-{n}", last], log
        assert not engine.cli("ps", "-q").stdout.strip()
    finally:
        engine.cli("rm", "-f", *names, check=False)
