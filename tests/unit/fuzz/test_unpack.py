"""Property-based fuzzing of layer unpack (issue 19, "keep it fixed"): generated tars full
of traversal, symlink and hardlink tricks never write outside the target directory, and
fail, if they fail, only with the typed errors of vocab/errors.py."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.imagestore.unpack import unpack
from tests.unit.fuzz.settings import FUZZ_UNPACK
from vocab.errors import MuelleError

# Layers carry owners and device nodes (whiteouts): applied as the image store does, as root.
pytestmark = pytest.mark.root

# The snapshot is <base>/dest; <base>/outside stands for the host. Entries aim at it
# through "..", absolute names, symlinks (relative, absolute, to its real path) and
# hardlinks; OUTSIDE_MARK is replaced with its real path.
OUTSIDE_MARK = "@OUTSIDE@"
_PART = st.sampled_from(["a", "b", "..", ".", "", "link", "outside", OUTSIDE_MARK,
                         ".wh.a", ".wh..wh..opq", "etc", "passwd"])
_PATH = st.lists(_PART, min_size=1, max_size=5).map("/".join)
_LINK_TARGET = st.one_of(_PATH, _PATH.map(lambda p: "/" + p),
                         st.sampled_from(["../../..", "/", "..", OUTSIDE_MARK,
                                          OUTSIDE_MARK + "/secret", "a/../../outside"]))
_KIND = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                         tarfile.FIFOTYPE, tarfile.CHRTYPE])
_ENTRY = st.tuples(_KIND, _PATH, _LINK_TARGET, st.binary(max_size=16),
                   st.sampled_from([0o644, 0o755, 0o4755, 0o000, 0o777]))


def _layer(entries: list[tuple[bytes, str, str, bytes, int]], outside: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, target, data, mode in entries:
            info = tarfile.TarInfo(name.replace(OUTSIDE_MARK, outside) or ".")
            info.type, info.mode = kind, mode
            info.linkname = target.replace(OUTSIDE_MARK, outside)
            if kind == tarfile.REGTYPE:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


def _snapshot(path: Path) -> dict[str, tuple[int, int, int, bytes]]:
    out = {}
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            full = Path(dirpath, name)
            st_ = full.lstat()
            data = full.read_bytes() if full.is_file() and not full.is_symlink() else b""
            out[str(full.relative_to(path))] = (st_.st_mode, st_.st_nlink, st_.st_mtime_ns,
                                                data)
    return out


# Found by this fuzzing: a directory replaced later in the same layer, by a file (its
# time was set anyway: a raw OSError) or, through a parent, by a symlink (the time was
# set through it, outside the snapshot).
@example([(tarfile.REGTYPE, "a", "", b"", 0o644), (tarfile.DIRTYPE, "b/a", "", b"", 0o755),
          (tarfile.REGTYPE, "b", "", b"", 0o644)])
@example([(tarfile.DIRTYPE, "b/dir", "", b"", 0o755),
          (tarfile.SYMTYPE, "b", OUTSIDE_MARK, b"", 0o777)])
@FUZZ_UNPACK
@given(st.lists(_ENTRY, max_size=10))
def test_unpack_stays_inside_and_raises_only_typed_errors(
        entries: list[tuple[bytes, str, str, bytes, int]]) -> None:
    base = Path(tempfile.mkdtemp(prefix="mu-fuzz-"))
    try:
        outside = base / "outside"
        outside.mkdir()
        (outside / "secret").write_bytes(b"host data")
        (outside / "dir").mkdir()
        before = _snapshot(outside)
        dest = base / "dest"
        dest.mkdir()
        raw = _layer(entries, str(outside))
        with contextlib.suppress(MuelleError):
            unpack(io.BytesIO(raw), dest, "sha256:" + hashlib.sha256(raw).hexdigest())
        assert _snapshot(outside) == before
        assert sorted(os.listdir(base)) == ["dest", "outside"]
    finally:
        shutil.rmtree(base)
