"""docker cp into a rootfs: nothing is written outside it, whatever the tar or the rootfs
holds (links to the host, entries with "..", a link then a file through it)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from services.shim import copyin
from vocab.errors import InvalidArgument, NotFound


def _tar(*entries: tuple[str, str, bytes]) -> io.BytesIO:
    """(name, kind "file"/"dir"/"link", data or link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, data.decode()
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o640
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.fixture
def rootfs(tmp_path: Path) -> tuple[Path, Path]:
    host = tmp_path / "host"
    host.mkdir()
    root = tmp_path / "rootfs"
    (root / "in").mkdir(parents=True)
    (root / "in" / "abs").symlink_to(host)
    (root / "in" / "rel").symlink_to(f"../../../../../../..{host}")
    return root, host


def test_files_land_in_the_destination(rootfs: tuple[Path, Path]) -> None:
    root, _ = rootfs
    copyin.extract(str(root), "/in", _tar(("d", "dir", b""), ("d/f", "file", b"hi")),
                   owner=(0, 0))
    assert (root / "in" / "d" / "f").read_bytes() == b"hi"
    assert (root / "in" / "d" / "f").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("dest", ["/in/abs", "/in/rel", "/in/abs/"])
def test_a_destination_through_a_link_stays_in_the_root(rootfs: tuple[Path, Path],
                                                       dest: str) -> None:
    root, host = rootfs
    with pytest.raises(NotFound):
        copyin.extract(str(root), dest, _tar(("f", "file", b"x")), owner=(0, 0))
    assert list(host.iterdir()) == []


@pytest.mark.parametrize("entries", [
    (("../escape", "file", b"x"),),
    (("abs/f", "file", b"x"),),  # through the rootfs's link to the host
    (("l", "link", b"/"), ("l/etc-file", "file", b"x")),  # a link the tar made
])
def test_entries_never_leave_the_destination(rootfs: tuple[Path, Path],
                                             entries: tuple[tuple[str, str, bytes], ...]
                                             ) -> None:
    root, host = rootfs
    with pytest.raises(InvalidArgument):
        copyin.extract(str(root), "/in", _tar(*entries), owner=(0, 0))
    assert list(host.iterdir()) == []
    assert not (root.parent / "escape").exists()
    assert os.listdir("/") and not Path("/etc-file").exists()
