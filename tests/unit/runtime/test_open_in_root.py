"""paths.open_in_root: every step relative to an fd of the root, never through a symlink
that appeared after secure_join resolved the path (CVE-2024-45310 class)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.runtime import paths
from vocab.errors import FailedPrecondition


def _real(fd: int) -> str:
    try:
        return os.readlink(paths.fd_path(fd))
    finally:
        os.close(fd)


def test_missing_dirs_and_files_are_made_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert _real(paths.open_in_root(str(root), "/a/b/c", "dir")) == str(root / "a/b/c")
    assert (root / "a/b/c").is_dir()
    assert _real(paths.open_in_root(str(root), "/a/f", "file")) == str(root / "a/f")
    assert (root / "a/f").is_file()
    with pytest.raises(FileNotFoundError):
        paths.open_in_root(str(root), "/missing")


@pytest.mark.parametrize("unsafe", ["/../../x", "../x", "/a/../../x", "/a/../../../x"])
def test_dotdot_stays_at_the_root(tmp_path: Path, unsafe: str) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert _real(paths.open_in_root(str(root), unsafe, "dir")) == str(root / "x")
    assert not (tmp_path / "x").exists()


def test_symlinks_present_at_resolution_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "abs").symlink_to("/")  # "/" of the container: the root itself
    (root / "up").symlink_to("../..")
    assert _real(paths.open_in_root(str(root), "/abs/t1", "dir")) == str(root / "t1")
    assert _real(paths.open_in_root(str(root), "/up/t2", "dir")) == str(root / "t2")
    assert list((tmp_path / "outside").iterdir()) == []


def test_a_symlink_swapped_in_after_resolution_is_refused(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """What a container sharing a volume does between secure_join and the walk."""
    root = tmp_path / "root"
    (root / "vol" / "d").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    real_join = paths.secure_join

    def join_then_swap(r: str, unsafe: str) -> str:
        joined = real_join(r, unsafe)
        (root / "vol" / "d").rmdir()
        (root / "vol" / "d").symlink_to(outside)
        return joined

    monkeypatch.setattr(paths, "secure_join", join_then_swap)
    with pytest.raises(FailedPrecondition, match="symbolic link"):
        paths.open_in_root(str(root), "/vol/d/target", "dir")
    assert list(outside.iterdir()) == []


def test_a_file_in_the_middle_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_text("")
    with pytest.raises((FailedPrecondition, NotADirectoryError)):
        paths.open_in_root(str(root), "/f/x", "dir")
