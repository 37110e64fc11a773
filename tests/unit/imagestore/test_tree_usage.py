"""Bytes and inodes of a directory tree (a container's writable layer in `system df`,
CRI's writable-layer usedBytes and inodesUsed)."""

from __future__ import annotations

import os
from pathlib import Path

from services.imagestore.recover import tree_size, tree_usage


def test_bytes_of_regular_files_and_every_inode_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x" * 10)
    (tmp_path / "b").write_bytes(b"y" * 5)
    os.link(tmp_path / "b", tmp_path / "d" / "b-again")
    (tmp_path / "l").symlink_to("d")  # a symlink to a directory: one inode, 0 bytes
    # Bytes as before (each link of a file counts); inodes: top, d, a, b, l.
    assert tree_usage(tmp_path) == (20, 5)
    assert tree_size(tmp_path) == 20


def test_an_empty_tree_is_its_top_directory(tmp_path: Path) -> None:
    assert tree_usage(tmp_path) == (0, 1)
