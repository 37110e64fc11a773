"""Resource limits: the OOM killer and the pids limit, under each runtime."""

from __future__ import annotations

import json
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
    # 100 background sleeps against a limit of 20: fork fails inside, the host is unharmed
    # and the whole process tree goes with the container's pid 1.
    proc = engine.cli("run", "--rm", "--pids-limit", "20", image, "sh", "-c",
                      "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; "
                      "echo spawned all", check=False)
    assert proc.returncode != 0
    assert "can't fork" in proc.stderr, proc.stderr
    assert "spawned all" not in proc.stdout
    assert engine.cli("ps", "-aq").stdout.strip() == ""


def test_limits_are_applied(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", "-m", "64m", "--pids-limit", "20", image,
                     "sleep", "30").stdout.strip()
    try:
        pids_max = Path("/sys/fs/cgroup/pids") / engine.cgroup_parent / cid / "pids.max"
        if not pids_max.exists():
            pids_max = Path("/sys/fs/cgroup") / engine.cgroup_parent / cid / "pids.max"
        assert pids_max.read_text().strip() == "20"
        limit = Path("/sys/fs/cgroup/memory") / engine.cgroup_parent / cid / \
            "memory.limit_in_bytes"
        if not limit.exists():
            limit = Path("/sys/fs/cgroup") / engine.cgroup_parent / cid / "memory.max"
        assert int(limit.read_text()) == 64 * 1024 * 1024
    finally:
        engine.cli("rm", "-f", cid)
