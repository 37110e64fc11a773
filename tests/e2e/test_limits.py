"""Resource limits: the OOM killer and the pids limit, under each runtime."""

from __future__ import annotations

import json
import os
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


@pytest.mark.parametrize("runtime", ["muelle", "runc"])
def test_cpuset_pins_the_container(engine: Engine, image: str, runtime: str) -> None:
    last = str((os.cpu_count() or 1) - 1)
    cid = engine.cli("run", "-d", "--runtime", runtime, "--cpuset-cpus", last,
                     "--cpuset-mems", "0", image, "sleep", "30").stdout.strip()
    try:
        cpus = Path("/sys/fs/cgroup/cpuset") / engine.cgroup_parent / cid / "cpuset.cpus"
        if not cpus.exists():
            cpus = Path("/sys/fs/cgroup") / engine.cgroup_parent / cid / "cpuset.cpus"
        assert cpus.read_text().strip() == last
        assert (cpus.parent / "cpuset.mems").read_text().strip() == "0"
        # The kernel's own view from inside: the init may run on that CPU only.
        allowed = engine.cli("exec", cid, "grep", "Cpus_allowed_list", "/proc/1/status").stdout
        assert allowed.split()[-1] == last
        host = json.loads(engine.cli("inspect", cid).stdout)[0]["HostConfig"]
        assert (host["CpusetCpus"], host["CpusetMems"]) == (last, "0")
    finally:
        engine.cli("rm", "-f", cid)


@pytest.mark.parametrize("flag, value, message", [
    ("--cpuset-cpus", "1-0", "Invalid value 1-0 for cpuset cpus"),
    ("--cpuset-cpus", "0,a", "Invalid value 0,a for cpuset cpus"),
    ("--cpuset-cpus", "4096", "Requested CPUs are not available - requested 4096"),
    ("--cpuset-mems", "7", "Requested memory nodes are not available - requested 7"),
])
def test_a_bad_cpuset_is_a_clear_error(engine: Engine, image: str, flag: str, value: str,
                                       message: str) -> None:
    proc = engine.cli("run", "--rm", flag, value, image, "true", check=False)
    assert proc.returncode == 125
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert engine.cli("ps", "-aq").stdout.strip() == ""
