"""Live restore: kill -9 the shim service while five containers run; after a restart every
container is still running, listed, logging, stoppable, with the right exit codes."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from services.core import launcher
from tests.support.engine import Engine

pytestmark = pytest.mark.root

# Each container logs a line, then a tick every 0.1 s until TERM, then exits with its own code.
SCRIPT = ('echo started-{n}; trap "echo stopping-{n}; exit {code}" TERM; '
          'while :; do echo tick >/dev/null; sleep 0.1; done')


def _wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_shim_kill9_keeps_five_containers(engine: Engine, image: str) -> None:
    codes = [3, 4, 5, 6, 7]
    names = [f"live-{os.getpid()}-{n}" for n in range(5)]
    for n, (name, code) in enumerate(zip(names, codes, strict=True)):
        runtime = ("muelle", "runc", "crun", "muelle", "runc")[n]
        engine.cli("run", "-d", "--name", name, "--runtime", runtime, image,
                   "sh", "-c", SCRIPT.format(n=n, code=code))
    try:
        for n, name in enumerate(names):
            _wait_for(lambda n=n, name=name: f"started-{n}" in engine.cli("logs", name).stdout)
        shim = launcher.running_pid(engine.cfg, "shim")
        assert shim is not None
        os.kill(shim, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(shim, 0)  # ours (the launcher ran it from this process)
        _wait_for(lambda: launcher.running_pid(engine.cfg, "shim") is None)
        # The containers do not notice: their monitors own them, not the shim.
        launcher.start(engine.cfg, str(engine.config_file), services=("shim",))

        running = engine.cli("ps").stdout
        for name in names:
            assert name in running
            assert '"Running": true' in engine.cli("inspect", name).stdout
        for n, (name, code) in enumerate(zip(names, codes, strict=True)):
            engine.cli("stop", "-t", "10", name)
            assert engine.cli("wait", name).stdout.strip() == str(code)
            log = engine.cli("logs", name).stdout
            assert f"started-{n}" in log and f"stopping-{n}" in log
    finally:
        engine.cli("rm", "-f", *names, check=False)
