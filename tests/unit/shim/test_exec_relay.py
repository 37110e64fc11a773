"""services/shim/exec_relay: copies a detached exec's output while the shim reads it, then
drops it, so the process never gets SIGPIPE; exits with the runtime's code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RELAY = [sys.executable, "-S", "-m", "services.shim.exec_relay"]
REPO = str(Path(__file__).resolve().parents[3])


def test_relays_output_and_the_exit_code() -> None:
    proc = subprocess.run([*RELAY, "sh", "-c", "echo out; echo err >&2; exit 3"],
                          capture_output=True, text=True, cwd=REPO, timeout=30)
    assert (proc.stdout, proc.stderr, proc.returncode) == ("out\n", "err\n", 3)


def test_keeps_the_process_writing_once_the_reader_is_gone(tmp_path: Path) -> None:
    done = tmp_path / "done"
    script = (f"sleep 0.2; i=0; while [ $i -lt 2000 ]; do echo line-$i; echo e >&2; "
              f"i=$((i+1)); done; echo ok > {done}")
    relay = subprocess.Popen([*RELAY, "sh", "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=REPO)
    assert relay.stdout is not None and relay.stderr is not None
    relay.stdout.close()  # as a killed shim's ends of the pipes
    relay.stderr.close()
    assert relay.wait(timeout=30) == 0
    assert done.read_text() == "ok\n"


def test_a_runtime_that_cannot_start() -> None:
    proc = subprocess.run([*RELAY, "/nonexistent/runtime"], capture_output=True, text=True,
                          cwd=REPO, timeout=30)
    assert proc.returncode == 126 and "No such file" in proc.stderr
