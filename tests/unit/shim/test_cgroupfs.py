"""cgroupfs.frozen reads the freezer state of a container's cgroup (v1 and v2 layouts)."""

from __future__ import annotations

from pathlib import Path

from services.shim.cgroupfs import frozen


def test_v1_freezer_state(tmp_path: Path) -> None:
    d = tmp_path / "freezer" / "muelle" / "c1"
    d.mkdir(parents=True)
    (d / "freezer.state").write_text("THAWED\n")
    assert not frozen("/muelle/c1", tmp_path)
    (d / "freezer.state").write_text("FROZEN\n")
    assert frozen("/muelle/c1", tmp_path)


def test_v2_cgroup_freeze(tmp_path: Path) -> None:
    d = tmp_path / "muelle" / "c2"
    d.mkdir(parents=True)
    (d / "cgroup.freeze").write_text("0\n")
    assert not frozen("muelle/c2", tmp_path)
    (d / "cgroup.freeze").write_text("1\n")
    assert frozen("muelle/c2", tmp_path)


def test_missing_or_empty_path_is_not_frozen(tmp_path: Path) -> None:
    assert not frozen("/muelle/gone", tmp_path)
    assert not frozen("", tmp_path)
