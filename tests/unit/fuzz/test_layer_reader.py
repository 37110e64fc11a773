"""The unpack's tar reading (tarfile "r:" over the decoded stream, _DecodeAhead's forward
seeks, file data as views of the decoded chunks) against tarfile's own stream mode on the
same generated archives: the same members, the same data, the same diff ID, whatever the
chunk boundaries (headers, long names and PAX records split across decoded chunks)."""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.imagestore import unpack as unpackmod
from tests.unit.fuzz.settings import FUZZ
from vocab.errors import DataLoss

_NAME_PART = st.sampled_from(["a", "b", "etc", "é", "x" * 60, ".wh.a", ".wh..wh..opq"])
_NAME = st.lists(_NAME_PART, min_size=1, max_size=4).map("/".join)  # long ones: > 100
_KIND = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                         tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
# Sizes around the 512-byte blocks; a few large enough for several decoded pieces.
_SIZE = st.one_of(st.integers(0, 1300), st.sampled_from([511, 512, 513, 4096, 70_000]))
_ENTRY = st.tuples(_KIND, _NAME, _NAME, _SIZE, st.booleans())


class _ShortReads(io.RawIOBase):
    """``data`` in reads of the given sizes (in turn), as a growing download gives it."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        super().__init__()
        self._data, self._sizes, self._pos, self._turn = data, sizes, 0, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        step = self._sizes[self._turn % len(self._sizes)]
        self._turn += 1
        out = self._data[self._pos:self._pos + min(step, size if size >= 0 else step)]
        self._pos += len(out)
        return out


def _archive(entries: list[tuple[bytes, str, str, int, bool]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for n, (kind, name, target, size, xattr) in enumerate(entries):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
            if xattr and fmt == tarfile.PAX_FORMAT:
                info.pax_headers = {"SCHILY.xattr.user.n": str(n) * 300}
            data = bytes([n % 251]) * size if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _members(tar: tarfile.TarFile, data: Any) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for m in tar:
        content = data(tar, m) if m.isreg() else b""
        out.append((m.name, m.type, m.size, m.linkname, m.devmajor, m.devminor,
                    dict(m.pax_headers), hashlib.sha256(content).hexdigest()))
    return out


def _ours(tar: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
    if m.size <= unpackmod._CHUNK // 64 and m.size % 2:  # both paths, small and large
        return unpackmod._Applier._data(tar, m)
    return b"".join(bytes(v) for v in unpackmod._Applier._data_chunks(tar, m))


def _theirs(tar: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
    src = tar.extractfile(m)
    assert src is not None
    return src.read()


@FUZZ
@given(st.lists(_ENTRY, max_size=8), st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
       st.lists(st.integers(1, 3000), min_size=1, max_size=6))
def test_the_decoded_stream_reads_as_tarfile_stream_mode_does(
        entries: list[tuple[bytes, str, str, int, bool]], fmt: int, pieces: list[int]) -> None:
    raw = _archive(entries, fmt)
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r|") as tar:
        expected = _members(tar, _theirs)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    reader = unpackmod._DecodeAhead(_ShortReads(raw, pieces), diff_id)
    try:
        with tarfile.open(fileobj=reader, mode="r:") as tar:
            got = _members(tar, _ours)
        reader.drain()
    finally:
        reader.close()
    assert got == expected
    assert "sha256:" + reader.hasher.hexdigest() == diff_id


def _negative_size_layer() -> bytes:
    """A regular file whose size field is -1024 in base-256: tarfile would seek backwards."""
    raw = bytearray(_archive([(tarfile.REGTYPE, "a", "", 10, False),
                              (tarfile.REGTYPE, "b", "", 10, False)], tarfile.GNU_FORMAT))
    header = raw[1024:1536]
    header[124:136] = b"\xff" * 10 + b"\xfc\x00"
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\x00" % sum(header)
    raw[1024:1536] = header
    assert struct.unpack(">q", bytes(header[128:136]))[0] == -1024
    return bytes(raw)


@pytest.mark.root
def test_a_size_that_seeks_backwards_is_data_loss(tmp_path: Path) -> None:
    raw = _negative_size_layer()
    with pytest.raises(DataLoss):
        unpackmod.unpack(io.BytesIO(raw), tmp_path,
                         "sha256:" + hashlib.sha256(raw).hexdigest())
