"""docker cp's view of a container (rootfs + mounts over it): paths resolve as the
container sees them, links in a mount to "/", ".." or a host path stay in the container's
root, copies in land in the mount (never under the mount point), read-only places are
refused as dockerd refuses them, and copies out tar what is mounted."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.shim import copyin, copyout
from services.shim.cpview import Mount, View, plain
from vocab.errors import InvalidArgument, NotFound


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("HOST SECRET")
    rootfs = tmp_path / "rootfs"
    (rootfs / "vol").mkdir(parents=True)
    (rootfs / "vol" / "under").write_text("under the mount point")
    (rootfs / "ro").mkdir()
    (rootfs / "marker").write_text("root marker")
    vol = tmp_path / "volume"
    vol.mkdir()
    (vol / "f").write_text("vol file")
    (vol / "up").symlink_to("/")
    (vol / "dotdot").symlink_to("../../..")
    (vol / "esc").symlink_to(host)
    ro = tmp_path / "robind"
    ro.mkdir()
    return {"host": host, "rootfs": rootfs, "vol": vol, "ro": ro, "tmp": tmp_path}


@pytest.fixture
def view(tree: dict[str, Path]) -> Iterator[View]:
    v = plain(str(tree["rootfs"]))
    v.mounts["/vol"] = Mount(os.open(tree["vol"], os.O_PATH), False)
    v.mounts["/ro"] = Mount(os.open(tree["ro"], os.O_PATH), True)
    with v:
        yield v


def _read(view: View, path: str) -> str:
    found = view.resolve(path, follow_last=False)
    try:
        with open(f"/proc/self/fd/{found.fd}") as f:
            return f.read()
    finally:
        os.close(found.fd)


def _tar(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    buf.seek(0)
    return buf


def test_paths_resolve_through_mounts_in_the_containers_root(view: View) -> None:
    assert _read(view, "/vol/f") == "vol file"
    assert _read(view, "/vol/up/marker") == "root marker"  # "/" is the container's root
    assert _read(view, "/vol/dotdot/marker") == "root marker"  # ".." stops at it
    with pytest.raises(NotFound):
        view.resolve("/vol/esc/secret", follow_last=False)  # a host path: not in here
    with pytest.raises(NotFound):
        view.resolve("/vol/under", follow_last=False)  # hidden by the mount
    found = view.resolve("/marker", follow_last=False)
    os.close(found.fd)
    assert not found.through_mounts  # the layers alone answer it
    found = view.resolve("/", follow_last=False)
    os.close(found.fd)
    assert found.through_mounts  # mounts lie below


def test_copy_in_lands_in_the_mount(view: View, tree: dict[str, Path]) -> None:
    copyin.extract(view, "/vol/", _tar("new"), owner=(0, 0))
    copyin.extract(view, "/", _tar("vol/deep"), owner=(0, 0))  # an entry into the mount
    copyin.extract(view, "/vol/up/", _tar("at-root"), owner=(0, 0))
    copyin.extract(view, "/vol/dotdot/", _tar("at-root2"), owner=(0, 0))
    assert sorted(p.name for p in tree["vol"].iterdir()) == [
        "deep", "dotdot", "esc", "f", "new", "up"]
    assert (tree["rootfs"] / "at-root").exists() and (tree["rootfs"] / "at-root2").exists()
    assert sorted(p.name for p in (tree["rootfs"] / "vol").iterdir()) == ["under"]
    with pytest.raises(NotFound):
        copyin.extract(view, "/vol/esc/", _tar("x"), owner=(0, 0))
    assert sorted(p.name for p in tree["host"].iterdir()) == ["secret"]
    assert sorted(p.name for p in tree["tmp"].iterdir()) == [
        "host", "robind", "rootfs", "volume"]


def test_read_only_places_are_refused(view: View, tree: dict[str, Path]) -> None:
    with pytest.raises(InvalidArgument, match="mounted volume is marked read-only"):
        copyin.extract(view, "/ro/", _tar("x"), owner=(0, 0))
    with pytest.raises(InvalidArgument, match="read-only mount"):
        copyin.extract(view, "/", _tar("ro/x"), owner=(0, 0))
    with pytest.raises(InvalidArgument, match="mount point"):
        copyin.extract(view, "/", _tar("vol"), owner=(0, 0))  # a file over a mount point
    assert list(tree["ro"].iterdir()) == []
    view.readonly_root = True
    with pytest.raises(InvalidArgument, match="container rootfs is marked read-only"):
        copyin.extract(view, "/", _tar("x"), owner=(0, 0))
    copyin.extract(view, "/vol/", _tar("ok"), owner=(0, 0))  # a volume stays writable
    assert (tree["vol"] / "ok").exists()


def test_copy_out_tars_what_is_mounted(view: View) -> None:
    found = view.resolve("/vol", follow_last=False)
    data = b"".join(copyout.read(view, "/vol", found))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        entries = {m.name: (m.linkname if m.issym() else m.type) for m in tar}
        assert tar.extractfile("vol/f").read() == b"vol file"  # type: ignore[union-attr]
    assert entries == {"vol": tarfile.DIRTYPE, "vol/f": tarfile.REGTYPE, "vol/up": "/",
                       "vol/dotdot": "../../..", "vol/esc": entries["vol/esc"]}
    assert "HOST SECRET" not in data.decode(errors="replace")
