"""status.py: a container's status from its dir alone (no runtime process)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from services.shim import status
from services.shim.meta import Meta
from services.shim.store import ContainerDir

CID = "b" * 64


def _cdir(tmp_path: Path) -> ContainerDir:
    cdir = ContainerDir(tmp_path / CID)
    cdir.path.mkdir()
    return cdir


def test_created_running_stopped(tmp_path: Path) -> None:
    cdir = _cdir(tmp_path)
    meta = Meta(runtime="runc", created_at="t0", volumes=[{"name": "v"}], restart_count=1)
    cdir.init_pid.write_text(str(os.getpid()))
    got = status.read(cdir, meta, monitor_alive=True)
    assert (got.status, got.pid, got.runtime, got.restart_count) == \
        ("created", os.getpid(), "runc", 1)
    assert got.volume_mounts == [{"name": "v"}] and got.bundle == str(cdir.path)
    cdir.started.write_text(json.dumps({"started_at": "t1"}))
    assert status.read(cdir, meta, monitor_alive=True).status == "running"
    cdir.status.write_text(json.dumps({"exit_code": 3, "oom_killed": True,
                                       "finished_at": "t2"}))
    got = status.read(cdir, meta, monitor_alive=False)
    assert (got.status, got.exit_code, got.oom_killed, got.finished_at) == \
        ("stopped", 3, True, "t2")


def test_a_monitor_gone_without_an_exit_is_stopped_255(tmp_path: Path) -> None:
    cdir = _cdir(tmp_path)
    got = status.read(cdir, Meta(), monitor_alive=False)
    assert (got.status, got.exit_code) == ("stopped", 255)
    assert "without recording its status" in got.error
