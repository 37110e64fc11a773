"""follow.py: reading a partial download while another thread appends to it."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from services.imagestore.follow import FollowReader, Growing, StreamAborted


def _writer(path: Path, growing: Growing, data: bytes, fail: bool = False) -> None:
    written = 0
    rng = random.Random(1)
    with open(path, "ab") as f:
        while written < len(data):
            n = rng.randint(1, 70000)
            f.write(data[written:written + n])
            f.flush()
            written = min(written + n, len(data))
            growing.advance(written)
            time.sleep(rng.random() / 500)
            if fail and written > len(data) // 2:
                growing.end(failed=True)
                return
    growing.end(failed=False)


def test_reads_exactly_what_the_download_writes(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    path, growing = tmp_path / "blob.partial", Growing()
    thread = threading.Thread(target=_writer, args=(path, growing, data))
    thread.start()  # the reader may open before the file exists
    with FollowReader(path, growing, threading.Event()) as reader:
        got = reader.read()
    thread.join()
    assert got == data


def test_a_failed_download_aborts_the_reader(tmp_path: Path) -> None:
    path, growing = tmp_path / "blob.partial", Growing()
    thread = threading.Thread(target=_writer, args=(path, growing, os.urandom(1 << 20), True))
    thread.start()
    with pytest.raises(StreamAborted), FollowReader(path, growing, threading.Event()) as reader:
        reader.read()
    thread.join()


def test_a_download_that_starts_over_aborts_the_reader(tmp_path: Path) -> None:
    path, growing = tmp_path / "blob.partial", Growing()
    path.write_bytes(b"old bytes")
    growing.advance(9)
    reader = FollowReader(path, growing, threading.Event())
    assert reader.read(9) == b"old bytes"
    path.unlink()  # as ContentStore.ingest does before downloading from zero
    path.write_bytes(b"new")
    growing.advance(12)
    with pytest.raises(StreamAborted):
        reader.read(1)
    reader.close()


def test_a_cancelled_pull_stops_a_waiting_reader(tmp_path: Path) -> None:
    path, growing, cancelled = tmp_path / "blob.partial", Growing(), threading.Event()
    path.write_bytes(b"")
    reader = FollowReader(path, growing, cancelled)
    threading.Timer(0.1, cancelled.set).start()
    with pytest.raises(StreamAborted):
        reader.read(1)
    reader.close()
