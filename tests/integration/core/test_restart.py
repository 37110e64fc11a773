"""Restarting a service after a kill -9 (issue 19, item 8): `make up` starts it again
though the killed process is a zombie nobody reaped, and the gateway's calls to it work
as soon as it serves again (no reconnect backoff to wait out)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from clients.sdk.client import Client
from engine import launcher
from tests.support.engine import Engine
from vocab.errors import Unavailable

pytestmark = pytest.mark.root

# Plays init after `make up`: the services, orphaned when the launcher exits, become its
# children (PR_SET_CHILD_SUBREAPER) and it reaps none of them until the end, so the shim
# killed with SIGKILL stays a zombie while `up` runs again.
NON_REAPING_INIT = textwrap.dedent("""
    import ctypes, os, signal, subprocess, sys, time
    ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    config = sys.argv[1]
    up = [sys.executable, "-m", "engine.launcher", "up", "--config", config]
    first = subprocess.run(up, capture_output=True, text=True, timeout=120)
    if first.returncode != 0:
        print("first up failed:", first.stderr); sys.exit(2)
    run = sys.argv[2]
    shim = int(open(os.path.join(run, "shim.pid")).read())
    os.kill(shim, signal.SIGKILL)
    for _ in range(500):
        if open(f"/proc/{shim}/stat").read().rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.01)
    else:
        print("the shim did not become a zombie"); sys.exit(2)
    again = subprocess.run(up, capture_output=True, text=True, timeout=120)
    print(again.stdout, again.stderr)
    down = [sys.executable, "-m", "engine.launcher", "down", "--config", config]
    subprocess.run(down, capture_output=True, timeout=120)
    while True:  # now reap everything, zombies included
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    sys.exit(again.returncode)
""")


def test_up_after_kill_9_starts_the_killed_service() -> None:
    eng = Engine()  # its dirs and config; the services are started by the script above
    try:
        proc = subprocess.run([sys.executable, "-c", NON_REAPING_INIT, str(eng.config_file),
                               str(eng.run)], capture_output=True, text=True, timeout=300,
                              env=eng.env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "muelle-shim" in proc.stdout
    finally:
        eng.close()


def test_gateway_calls_work_once_a_restarted_shim_serves(fresh_engine: Engine) -> None:
    eng = fresh_engine
    with Client(eng.host) as client:
        assert client.containers(all=True) == []
        shim = launcher.running_pid(eng.cfg, "shim")
        assert shim is not None
        os.kill(shim, signal.SIGKILL)
        os.waitpid(shim, 0)
        # Calls while it is down fail, and grow the gateway's reconnect backoff.
        for _ in range(3):
            with pytest.raises(Unavailable):
                client.containers(all=True)
        launcher.start(eng.cfg, str(eng.config_file), ("shim",))  # returns once serving
        assert client.containers(all=True) == []
