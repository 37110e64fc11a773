"""cgroup v1 and v2 managers against a fake hierarchy in a temp dir (files only)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from services.runtime.cgroups import files as cgroup_files
from services.runtime.cgroups import own_procs_file, prime_migration
from services.runtime.cgroups.v1 import CgroupV1
from services.runtime.cgroups.v2 import CgroupV2
from vocab.errors import FailedPrecondition, InvalidArgument

RESOURCES = {
    "memory": {"limit": 1 << 26, "swap": 1 << 27},
    "pids": {"limit": 64},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "devices": [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
}


def _fake_v1(root: Path) -> None:
    files = {
        "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"],
        "pids": ["pids.max"], "cpu": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
        "devices": ["devices.allow", "devices.deny"], "cpuset": ["cpuset.cpus", "cpuset.mems"],
    }
    for ctrl, names in files.items():
        leaf = root / ctrl / "muelle" / "c1"
        leaf.mkdir(parents=True)
        for d in (root / ctrl, root / ctrl / "muelle", leaf):
            for name in [*names, "cgroup.procs"]:
                (d / name).write_text("")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")


def test_v1_limits(tmp_path: Path) -> None:
    _fake_v1(tmp_path)
    cg = CgroupV1("/muelle/c1", str(tmp_path))
    cg.create(RESOURCES)
    leaf = "muelle/c1"
    assert (tmp_path / "memory" / leaf / "memory.limit_in_bytes").read_text() == str(1 << 26)
    assert (tmp_path / "memory" / leaf / "memory.memsw.limit_in_bytes").read_text() == \
        str(1 << 27)
    assert (tmp_path / "pids" / leaf / "pids.max").read_text() == "64"
    assert (tmp_path / "cpu" / leaf / "cpu.cfs_quota_us").read_text() == "50000"
    assert (tmp_path / "cpuset" / leaf / "cpuset.cpus").read_text() == "0-1"
    assert (tmp_path / "cpuset" / "muelle" / "cpuset.mems").read_text() == "0"
    # each write replaces the file here; the last rule wins in the fake
    assert (tmp_path / "devices" / leaf / "devices.allow").read_text() == "c 1:3 rwm"
    cg.join(42)
    assert (tmp_path / "memory" / leaf / "cgroup.procs").read_text() == "42"
    assert cg.pids() == [42]
    assert {name for name, _ in cg.mounts()} == {"memory", "pids", "cpu", "devices", "cpuset"}


def test_v2_limits(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    mid = tmp_path / "muelle"
    mid.mkdir()
    (mid / "cgroup.controllers").write_text("cpu io memory pids\n")
    (mid / "cgroup.subtree_control").write_text("")
    leaf = mid / "c1"
    leaf.mkdir()
    for name in ("memory.max", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight",
                 "cgroup.procs"):
        (leaf / name).write_text("")
    cg = CgroupV2("/muelle/c1", str(tmp_path))
    cg.create(RESOURCES)
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +io +memory +pids"
    assert (leaf / "memory.max").read_text() == str(1 << 26)
    assert (leaf / "memory.swap.max").read_text() == str(1 << 26)
    assert (leaf / "pids.max").read_text() == "64"
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "cpu.weight").read_text() == "20"


def test_own_procs_file_finds_a_v1_hierarchy(tmp_path: Path) -> None:
    (tmp_path / "systemd" / "user.slice").mkdir(parents=True)
    (tmp_path / "systemd" / "user.slice" / "cgroup.procs").write_text("")
    table = "12:pids:/gone\n1:name=systemd:/user.slice\n0::/user.slice\n"
    assert own_procs_file(tmp_path, table) == str(tmp_path / "systemd" / "user.slice" /
                                                  "cgroup.procs")


def test_own_procs_file_finds_a_hybrid_unified_mount(tmp_path: Path) -> None:
    (tmp_path / "unified" / "a").mkdir(parents=True)
    (tmp_path / "unified" / "a" / "cgroup.procs").write_text("")
    assert own_procs_file(tmp_path, "0::/a\n") == str(tmp_path / "unified" / "a" / "cgroup.procs")
    assert own_procs_file(tmp_path, "0::/elsewhere\n") is None


def test_priming_moves_nothing() -> None:
    """On the host's real hierarchy: the primed migration leaves us where we were."""
    before = Path("/proc/self/cgroup").read_text()
    done = prime_migration()
    assert done is not None
    assert done.acquire(timeout=10)  # released once the primer's write is over
    assert Path("/proc/self/cgroup").read_text() == before


@pytest.mark.parametrize("code, kind", [(errno.ERANGE, InvalidArgument),
                                        (errno.EINVAL, InvalidArgument),
                                        (errno.EBUSY, FailedPrecondition)])
def test_a_refused_limit_names_its_file_and_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  code: int, kind: type[Exception]) -> None:
    _fake_v1(tmp_path)

    def refuse(path: str, value: str) -> None:
        if os.path.basename(path) == "memory.limit_in_bytes":
            raise OSError(code, os.strerror(code))  # as a close() reports it: no file name
        Path(path).write_text(value)

    monkeypatch.setattr(cgroup_files, "write", refuse)  # write_limit calls it there
    with pytest.raises(kind, match=rf"memory.limit_in_bytes = {1 << 26}: .*{os.strerror(code)}"):
        CgroupV1("/muelle/c1", str(tmp_path)).create(RESOURCES)
