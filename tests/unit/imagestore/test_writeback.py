"""writeback.py: a large file's write-out is started every few MiB, from where it left off."""

from __future__ import annotations

import os
from pathlib import Path

from services.imagestore import writeback


def test_write_out_starts_every_so_many_bytes_from_the_start(tmp_path: Path) -> None:
    calls: list[tuple[int, int, int, int]] = []

    def record(fd: int, offset: int, nbytes: int, flags: int) -> int:
        calls.append((fd, offset, nbytes, flags))
        return 0

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        wb = writeback.Writeback(fd, start=100, every=10)
        wb._call = record
        for n in (4, 4, 4, 30, 1):
            wb.wrote(n)
    finally:
        os.close(fd)
    flag = writeback.SYNC_FILE_RANGE_WRITE
    assert calls == [(fd, 100, 12, flag), (fd, 112, 30, flag)]


def test_the_real_call_takes_a_file(tmp_path: Path) -> None:
    if writeback._sync_file_range() is None:
        return  # not Linux: nothing to start
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        wb = writeback.Writeback(fd, every=4096)
        os.write(fd, b"x" * 8192)
        wb.wrote(8192)
        assert os.fstat(fd).st_size == 8192
    finally:
        os.close(fd)
