"""The snapshot root is marked as the top of unrelated hierarchies (topdir.py), so each
layer's tree gets its own inode group on ext4."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from services.imagestore import topdir
from services.imagestore.snapshots import Snapshots


def _supports_topdir(path: Path) -> bool:
    probe = Path(tempfile.mkdtemp(dir=path))
    try:
        return topdir.spread_children(probe)
    finally:
        probe.rmdir()


def test_snapshot_root_spreads_its_children(tmp_path: Path) -> None:
    if not _supports_topdir(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} has no top-directory flag")
    snaps = Snapshots(tmp_path / "root")
    assert topdir.flags(snaps.snapshots) & topdir.FS_TOPDIR_FL
    # Not inherited: only the snapshot root spreads, a layer's own dirs keep locality.

    def apply(dest: Path) -> int:
        (dest / "usr").mkdir()
        return 0

    snaps.create("sha256:" + "a" * 64, [], apply)
    layer = snaps.fs("sha256:" + "a" * 64)
    assert not topdir.flags(layer.parent) & topdir.FS_TOPDIR_FL
    assert not topdir.flags(layer / "usr") & topdir.FS_TOPDIR_FL


def test_spreading_again_keeps_the_other_flags(tmp_path: Path) -> None:
    if not _supports_topdir(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} has no top-directory flag")
    Snapshots(tmp_path / "root")
    before = topdir.flags(tmp_path / "root" / "snapshots")
    Snapshots(tmp_path / "root")  # a restart
    assert topdir.flags(tmp_path / "root" / "snapshots") == before


def test_a_filesystem_without_the_flag_is_left_alone() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm")
    d = Path(tempfile.mkdtemp(dir=shm))
    try:
        # tmpfs has no FS_TOPDIR_FL: a hint that cannot be given is no error.
        assert topdir.spread_children(d) is False
        Snapshots(d / "root")  # the store starts all the same
    finally:
        shutil.rmtree(d)
