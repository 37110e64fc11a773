"""Resource limits: the OOM killer and the pids limit, under each runtime."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root


@pytest.mark.parametrize("runtime", ["muelle", "runc"])
def test_memory_limit_oom_kills(engine: Engine, image: str, runtime: str) -> None:
    # dd with a 100 MB block size allocates and touches a 100 MB buffer.
    proc = engine.cli("run", "--name", f"oom-{runtime}", "--runtime", runtime, "-m", "32m",
                      image, "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1",
                      check=False)
    try:
        assert proc.returncode == 137, proc.stderr
        state = json.loads(engine.cli("inspect", f"oom-{runtime}").stdout)[0]["State"]
        assert state["OOMKilled"] is True
        assert state["ExitCode"] == 137
    finally:
        engine.cli("rm", "-f", f"oom-{runtime}")


def test_pids_limit_stops_a_fork_loop(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", "--pids-limit", "20", image, "sh", "-c",
                     "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; "
                     "echo spawned; sleep 30").stdout.strip()
    try:
        pids_dir = Path("/sys/fs/cgroup/pids") / engine.cgroup_parent / cid
        deadline = time.monotonic() + 20
        while "spawned" not in engine.cli("logs", cid).stdout:
            assert time.monotonic() < deadline, engine.cli("logs", cid).stdout
            time.sleep(0.2)
        if pids_dir.exists():
            assert int((pids_dir / "pids.current").read_text()) <= 20
            assert (pids_dir / "pids.max").read_text().strip() == "20"
        logs = engine.cli("logs", cid).stderr + engine.cli("logs", cid).stdout
        assert "fork" in logs.lower(), logs
    finally:
        engine.cli("rm", "-f", cid)


def test_memory_limit_is_applied(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", "-m", "64m", image, "sleep", "30").stdout.strip()
    try:
        limit = Path("/sys/fs/cgroup/memory") / engine.cgroup_parent / cid / \
            "memory.limit_in_bytes"
        if not limit.exists():
            limit = Path("/sys/fs/cgroup") / engine.cgroup_parent / cid / "memory.max"
        assert int(limit.read_text()) == 64 * 1024 * 1024
    finally:
        engine.cli("rm", "-f", cid)
