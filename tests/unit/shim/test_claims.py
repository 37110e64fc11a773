"""services/shim/claims.py: one engine per bridge and cgroup parent on a host."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from services.shim.claims import Claims
from vocab.errors import FailedPrecondition


def _claims(tmp_path: Path, root: str, bridge: str = "br0", parent: str = "cg") -> Claims:
    return Claims(Path(root), {"network.bridge": bridge, "shim.cgroup_parent": parent},
                  directory=tmp_path / "claims", lock_path=str(tmp_path / "lock"))


def _held_by(tmp_path: Path, root: str, pid: int) -> None:
    (tmp_path / "claims").mkdir(exist_ok=True)
    (tmp_path / "claims" / "network.bridge-br0").write_text(
        json.dumps({"root": root, "pid": pid}))


def test_a_live_engine_with_another_root_keeps_its_bridge(tmp_path: Path) -> None:
    _held_by(tmp_path, "/srv/other", os.getppid())  # alive
    with pytest.raises(FailedPrecondition, match=r"network.bridge 'br0' is in use by the "
                       r"muelle engine at /srv/other \(shim pid \d+\)"):
        _claims(tmp_path, "/srv/mine").acquire()
    # nothing claimed on the way: the cgroup parent stays free
    assert not (tmp_path / "claims" / "shim.cgroup_parent-cg").exists()


def test_a_dead_holder_or_the_same_root_is_taken_over(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    _held_by(tmp_path, "/srv/other", gone.pid)  # killed -9 without releasing
    mine = _claims(tmp_path, "/srv/mine")
    mine.acquire()
    _claims(tmp_path, "/srv/mine").acquire()  # a restarted shim of the same root
    _claims(tmp_path, "/srv/other", bridge="br1", parent="cg1").acquire()  # no conflict
    mine.release()
    assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == [
        "network.bridge-br1", "shim.cgroup_parent-cg1"]


def test_a_reused_pid_holds_nothing(tmp_path: Path) -> None:
    """The holder's pid now names another process (started later): the claim is stale."""
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "network.bridge-br0").write_text(
        json.dumps({"root": "/srv/other", "pid": os.getppid(), "started": -1}))
    _claims(tmp_path, "/srv/mine").acquire()
    held = json.loads((tmp_path / "claims" / "network.bridge-br0").read_text())
    assert held["root"] == "/srv/mine" and held["pid"] == os.getpid() and held["started"] > 0
