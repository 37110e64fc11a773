"""monitors.py: the monitor's report on the sync pipe, the liveness check (pid reuse
guarded by the recorded start time), and one wording for a missing executable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.core.config import Config
from services.runtime.api import proc_start_time
from services.shim.monitors import Monitors, exec_error, read_sync
from services.shim.store import ContainerDir

CID = "c" * 64


def test_read_sync_reports() -> None:
    r, w = os.pipe()
    os.write(w, b'{"pid": 42}\nrest')
    assert read_sync(r, 5) == {"pid": 42}
    os.close(w)
    assert read_sync(r, 5) == {}  # EOF: the monitor exited without a word
    os.close(r)
    r, w = os.pipe()
    os.write(w, b"garbage\n")
    assert "garbled reply" in read_sync(r, 5)["error"]
    os.close(r)
    os.close(w)


def test_alive_checks_the_recorded_start_time(tmp_path: Path) -> None:
    cdir = ContainerDir(tmp_path / CID)
    cdir.path.mkdir()
    monitors = Monitors(Config(root=tmp_path, run=tmp_path / "run"))
    assert not monitors.alive(cdir) and monitors.pidfd(cdir) == -1
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cdir.monitor_pid.write_text(str(child.pid))
        cdir.monitor_start.write_text(str(proc_start_time(child.pid)))
        assert monitors.alive(cdir) and not monitors.stopped(cdir)
        cdir.monitor_start.write_text("1")  # another process now has that pid
        assert not monitors.alive(cdir) and monitors.stopped(cdir)
    finally:
        child.kill()
        child.wait()


def test_a_missing_executable_reads_as_runc_says_it() -> None:
    crun = "executable file `nosuch` not found in $PATH: No such file or directory"
    assert exec_error(crun).startswith('exec: "nosuch": executable file not found in $PATH')
    runc = 'exec: "x": executable file not found in $PATH'
    assert exec_error(runc) == runc
