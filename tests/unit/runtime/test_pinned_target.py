"""Mount targets are pinned by an O_PATH fd and re-checked against the rootfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.core.errors import FailedPrecondition
from services.runtime.rootfs import _pinned


def test_a_target_inside_the_rootfs_is_pinned(tmp_path: Path) -> None:
    (tmp_path / "root" / "data").mkdir(parents=True)
    with _pinned(str(tmp_path / "root"), str(tmp_path / "root" / "data")) as target:
        assert target.startswith("/proc/self/fd/")
        assert os.readlink(target) == str(tmp_path / "root" / "data")


def test_a_swapped_in_symlink_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    # what a container sharing a volume could do after secure_join checked the path
    (root / "data").symlink_to(tmp_path / "outside")
    with pytest.raises(FailedPrecondition, match="symbolic link"), \
            _pinned(str(root), str(root / "data")):
        pass
    (root / "sub").symlink_to(tmp_path)
    with pytest.raises(FailedPrecondition, match="outside the rootfs"), \
            _pinned(str(root), str(root / "sub" / "outside")):
        pass
