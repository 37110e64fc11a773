"""Layer application: whiteouts, opaque dirs, links, metadata and malicious tars."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from services.imagestore.unpack import unpack
from tests.support.images import EPOCH, Entry, Layer, busybox_layer
from vocab.errors import DataLoss, InvalidArgument


def diff_id(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def apply(raw: bytes, dest: Path, compress: bool = True, lowers: list[Path] | None = None,
          digest: str | None = None) -> int:
    dest.mkdir(exist_ok=True)
    blob = gzip.compress(raw) if compress else raw
    return unpack(io.BytesIO(blob), dest, digest or diff_id(raw), lowers or [])


def custom_tar(build: Callable[[tarfile.TarFile], None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def add(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"",
        linkname: str = "", mode: int = 0o644, **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, mode, EPOCH
    for key, value in attrs.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def tree(path: Path) -> dict[str, tuple[int, int]]:
    """Everything under ``path`` (mode, size), to prove nothing outside a snapshot changed."""
    out = {}
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            full = Path(dirpath, name)
            st = full.lstat()
            out[str(full.relative_to(path))] = (st.st_mode, st.st_size)
    return out


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """(snapshot dir, a sentinel dir beside it that must never change)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched")
    return tmp_path / "snap", outside


def test_busybox_layer(tmp_path: Path) -> None:
    size = apply(busybox_layer().tar(), tmp_path / "s")
    root = tmp_path / "s"
    assert size > 100_000
    assert os.readlink(root / "bin/ls") == "busybox"
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert os.access(root / "bin/busybox", os.X_OK)
    # Directory times are set after their children were created.
    assert int((root / "bin").stat().st_mtime) == EPOCH


def test_plain_tar_is_detected_by_magic(tmp_path: Path) -> None:
    raw = Layer([Entry("a", data=b"x")]).tar()
    apply(raw, tmp_path / "s", compress=False)
    assert (tmp_path / "s/a").read_bytes() == b"x"


def test_zstd_layer_is_detected_by_magic(tmp_path: Path) -> None:
    raw = Layer([Entry("a", data=b"zstd")]).tar()
    blob = zstandard.ZstdCompressor().compress(raw)
    (tmp_path / "s").mkdir()
    unpack(io.BytesIO(blob), tmp_path / "s", diff_id(raw), [])
    assert (tmp_path / "s/a").read_bytes() == b"zstd"


def test_whiteout_becomes_overlay_char_device(tmp_path: Path) -> None:
    apply(Layer([Entry("etc/passwd", "whiteout", uid=5, gid=6)]).tar(), tmp_path / "s")
    st = (tmp_path / "s/etc/passwd").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert (st.st_uid, st.st_gid) == (5, 6)
    assert not (tmp_path / "s/etc/.wh.passwd").exists()


def test_opaque_keeps_same_layer_entries_in_any_order(tmp_path: Path) -> None:
    raw = Layer([Entry("a/b/c/foo", data=b"1"), Entry("a", "opaque"),
                 Entry("a/bar", data=b"2")]).tar()
    apply(raw, tmp_path / "s")
    root = tmp_path / "s"
    assert os.getxattr(root / "a", "trusted.overlay.opaque") == b"y"
    assert (root / "a/b/c/foo").read_bytes() == b"1"
    assert (root / "a/bar").read_bytes() == b"2"
    assert sorted(os.listdir(root / "a")) == ["b", "bar"]


def test_whiteout_does_not_hide_same_layer_file(tmp_path: Path) -> None:
    raw = Layer([Entry("x", data=b"mine"), Entry("x", "whiteout")]).tar()
    apply(raw, tmp_path / "s")
    assert (tmp_path / "s/x").read_bytes() == b"mine"


def test_bare_whiteout_is_rejected(tmp_path: Path) -> None:
    raw = custom_tar(lambda t: add(t, "dir/.wh."))
    with pytest.raises(InvalidArgument):
        apply(raw, tmp_path / "s")


def test_whiteout_meta_is_not_written(tmp_path: Path) -> None:
    raw = custom_tar(lambda t: add(t, ".wh..wh.plnk"))
    apply(raw, tmp_path / "s")
    assert os.listdir(tmp_path / "s") == []


def test_hardlink_in_layer_shares_inode(tmp_path: Path) -> None:
    raw = Layer([Entry("f", data=b"data"), Entry("g", "hardlink", target="f")]).tar()
    apply(raw, tmp_path / "s")
    assert (tmp_path / "s/f").stat().st_ino == (tmp_path / "s/g").stat().st_ino


def test_hardlink_to_lower_layer_is_copied_up(tmp_path: Path) -> None:
    apply(Layer([Entry("bin/tool", data=b"tool", mode=0o755)]).tar(), tmp_path / "l0")
    apply(Layer([Entry("bin/alias", "hardlink", target="bin/tool")]).tar(), tmp_path / "l1",
          lowers=[tmp_path / "l0"])
    assert (tmp_path / "l1/bin/alias").read_bytes() == b"tool"
    assert stat.S_IMODE((tmp_path / "l1/bin/alias").stat().st_mode) == 0o755


def test_hardlink_to_whited_out_lower_file_fails(tmp_path: Path) -> None:
    apply(Layer([Entry("f", data=b"x")]).tar(), tmp_path / "l0")
    apply(Layer([Entry("f", "whiteout")]).tar(), tmp_path / "l1")
    with pytest.raises(InvalidArgument):
        apply(Layer([Entry("g", "hardlink", target="f")]).tar(), tmp_path / "l2",
              lowers=[tmp_path / "l1", tmp_path / "l0"])


@pytest.mark.parametrize("target", ["../outside/victim", "/etc/passwd",
                                    "../../../../etc/shadow"])
def test_hardlink_outside_root_is_refused(sandbox: tuple[Path, Path], target: str) -> None:
    snap, outside = sandbox
    before = tree(outside.parent / "outside")
    raw = custom_tar(lambda t: add(t, "evil", tarfile.LNKTYPE, linkname=target))
    with pytest.raises(InvalidArgument):
        apply(raw, snap)
    assert tree(outside) == before
    assert (outside / "victim").stat().st_nlink == 1


def test_hardlink_to_directory_is_refused(tmp_path: Path) -> None:
    raw = Layer([Entry("d", "dir"), Entry("l", "hardlink", target="d")]).tar()
    with pytest.raises(InvalidArgument):
        apply(raw, tmp_path / "s")


@pytest.mark.parametrize("name", ["../outside/victim", "../../outside/new", "/outside/abs",
                                  "a/../../outside/victim"])
def test_dotdot_and_absolute_names_are_contained(sandbox: tuple[Path, Path], name: str) -> None:
    snap, outside = sandbox
    before = tree(outside)
    raw = custom_tar(lambda t: add(t, name, data=b"pwned"))
    apply(raw, snap)
    assert tree(outside) == before
    assert (outside / "victim").read_text() == "untouched"
    contained = snap / os.path.normpath("/" + name).lstrip("/")
    assert contained.read_bytes() == b"pwned"


def test_symlink_parent_cannot_escape(sandbox: tuple[Path, Path]) -> None:
    snap, outside = sandbox
    before = tree(outside)

    def build(t: tarfile.TarFile) -> None:
        add(t, "abs", tarfile.SYMTYPE, linkname=str(outside))
        add(t, "abs/victim", data=b"pwned")
        add(t, "rel", tarfile.SYMTYPE, linkname="../../../../../../" + str(outside))
        add(t, "rel/new", data=b"pwned")
        add(t, "loop", tarfile.SYMTYPE, linkname="loop2")
        add(t, "loop2", tarfile.SYMTYPE, linkname="loop")

    apply(custom_tar(build), snap)
    assert tree(outside) == before
    # Symlinks are written verbatim; writes through them land inside the snapshot.
    assert os.readlink(snap / "abs") == str(outside)
    inside = snap / str(outside).lstrip("/")
    assert (inside / "victim").read_bytes() == b"pwned"
    assert (inside / "new").read_bytes() == b"pwned"


def test_symlink_loop_parent_is_rejected(sandbox: tuple[Path, Path]) -> None:
    snap, outside = sandbox

    def build(t: tarfile.TarFile) -> None:
        add(t, "loop", tarfile.SYMTYPE, linkname="loop2")
        add(t, "loop2", tarfile.SYMTYPE, linkname="loop")
        add(t, "loop/x", data=b"x")

    with pytest.raises(InvalidArgument):
        apply(custom_tar(build), snap)


def test_entry_replaces_symlink_without_following_it(sandbox: tuple[Path, Path]) -> None:
    snap, outside = sandbox

    def build(t: tarfile.TarFile) -> None:
        add(t, "link", tarfile.SYMTYPE, linkname=str(outside / "victim"))
        add(t, "link", data=b"replaced")

    apply(custom_tar(build), snap)
    assert (outside / "victim").read_text() == "untouched"
    assert (snap / "link").read_bytes() == b"replaced" and not (snap / "link").is_symlink()


def test_metadata_owner_setuid_xattr_devices(tmp_path: Path) -> None:
    def build(t: tarfile.TarFile) -> None:
        add(t, "suid", data=b"x", mode=0o4755, uid=1000, gid=1000)
        add(t, "null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        add(t, "fifo", tarfile.FIFOTYPE, mode=0o640)
        info = tarfile.TarInfo("xattr")
        info.pax_headers = {"SCHILY.xattr.user.muelle": "yes"}
        info.mtime = EPOCH
        t.addfile(info, io.BytesIO(b""))

    apply(custom_tar(build), tmp_path / "s")
    root = tmp_path / "s"
    st = (root / "suid").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o4755)
    st = (root / "null").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_ISFIFO((root / "fifo").lstat().st_mode)
    assert os.getxattr(root / "xattr", "user.muelle") == b"yes"
    assert int((root / "xattr").stat().st_mtime) == EPOCH


def test_diff_id_mismatch_is_data_loss(tmp_path: Path) -> None:
    raw = Layer([Entry("a", data=b"x")]).tar()
    with pytest.raises(DataLoss, match="diff ID"):
        apply(raw, tmp_path / "s", digest=diff_id(b"other"))


def test_truncated_gzip_is_data_loss(tmp_path: Path) -> None:
    raw = busybox_layer().tar()
    blob = gzip.compress(raw)
    (tmp_path / "s").mkdir()
    with pytest.raises(DataLoss):
        unpack(io.BytesIO(blob[: len(blob) // 2]), tmp_path / "s", diff_id(raw))


def test_garbage_is_data_loss(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    with pytest.raises(DataLoss):
        unpack(io.BytesIO(b"\x1f\x8b\x08garbage" * 100), tmp_path / "s", diff_id(b""))
    with pytest.raises(DataLoss):
        unpack(io.BytesIO(os.urandom(3000)), tmp_path / "s", diff_id(b""))


def test_overlay_xattrs_from_the_layer_are_ignored(tmp_path: Path) -> None:
    def build(t: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("d")
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
        info.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                            "SCHILY.xattr.trusted.overlay.opaque": "y"}
        t.addfile(info)

    apply(custom_tar(build), tmp_path / "s")
    assert not [x for x in os.listxattr(tmp_path / "s/d") if x.startswith("trusted.overlay")]


# -- files written on threads: later entries still see them in order ----------------------


def _unpack_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith(("layer-write", "layer-decode"))]


def _many(t: tarfile.TarFile, prefix: str, n: int = 300) -> None:
    for i in range(n):
        add(t, f"{prefix}/f{i:03d}", data=b"%d" % i)


def test_a_dir_replaced_by_a_symlink_after_pending_writes(sandbox: tuple[Path, Path]) -> None:
    snap, outside = sandbox
    before = tree(outside)

    def build(t: tarfile.TarFile) -> None:
        add(t, "d", tarfile.DIRTYPE, mode=0o755)
        _many(t, "d")
        add(t, "d", tarfile.SYMTYPE, linkname=str(outside))  # replaces the dir and its files
        add(t, "d/victim", data=b"pwned")

    apply(custom_tar(build), snap)
    assert tree(outside) == before
    assert os.readlink(snap / "d") == str(outside)
    assert (snap / str(outside).lstrip("/") / "victim").read_bytes() == b"pwned"


def test_the_same_file_twice_keeps_the_last(tmp_path: Path) -> None:
    def build(t: tarfile.TarFile) -> None:
        _many(t, "a")
        add(t, "a/f299", data=b"second", mode=0o600)

    apply(custom_tar(build), tmp_path / "s")
    path = tmp_path / "s/a/f299"
    assert path.read_bytes() == b"second" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(os.listdir(tmp_path / "s/a")) == 300


@pytest.mark.parametrize("last", [
    ("link", tarfile.LNKTYPE, "d5/f049"),
    ("d5/.wh.f049", tarfile.REGTYPE, ""),
], ids=["hardlink", "whiteout"])
def test_hardlink_and_whiteout_see_pending_files(tmp_path: Path,
                                                 last: tuple[str, bytes, str]) -> None:
    name, kind, target = last

    def build(t: tarfile.TarFile) -> None:
        for d in range(6):
            _many(t, f"d{d}", 50)
        add(t, name, kind, linkname=target)

    apply(custom_tar(build), tmp_path / "s")
    root = tmp_path / "s"
    assert (root / "d5/f049").read_bytes() == b"49"  # not turned into a whiteout
    if kind == tarfile.LNKTYPE:
        assert (root / name).stat().st_ino == (root / target).stat().st_ino
    assert sum(len(os.listdir(root / f"d{d}")) for d in range(6)) == 300


def test_a_writer_error_fails_the_unpack_and_stops_its_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.imagestore import unpack as unpackmod

    real = unpackmod._Applier._create_file

    def failing(self: object, path: str, chunks: list[bytes], m: tarfile.TarInfo) -> None:
        if path.endswith("f150"):
            raise OSError(28, "No space left on device")
        real(self, path, chunks, m)  # type: ignore[arg-type]

    monkeypatch.setattr(unpackmod._Applier, "_create_file", failing)
    with pytest.raises(OSError, match="No space left"):
        apply(custom_tar(lambda t: _many(t, "a")), tmp_path / "s")
    assert _unpack_threads() == []


def test_a_bad_entry_mid_stream_stops_the_decoder(tmp_path: Path) -> None:
    def build(t: tarfile.TarFile) -> None:
        _many(t, "a")
        add(t, "a/.wh.")  # refused
        add(t, "b", data=os.urandom(4 << 20))  # more than the decoder reads ahead

    with pytest.raises(InvalidArgument):
        apply(custom_tar(build), tmp_path / "s")
    assert _unpack_threads() == []


@pytest.mark.parametrize("through_link", [False, True])
def test_a_pending_file_used_as_a_directory_is_refused(tmp_path: Path,
                                                       through_link: bool) -> None:
    def build(t: tarfile.TarFile) -> None:
        _many(t, "a", 250)
        add(t, "a/f", data=b"file")
        if through_link:
            add(t, "l", tarfile.SYMTYPE, linkname="a/f")
        add(t, "l/g" if through_link else "a/f/g", data=b"x")

    with pytest.raises(InvalidArgument, match="not a directory"):
        apply(custom_tar(build), tmp_path / "s")
    assert (tmp_path / "s/a/f").read_bytes() == b"file"
    assert _unpack_threads() == []
