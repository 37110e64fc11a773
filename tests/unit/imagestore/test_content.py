"""Content store: verified commits, nothing committed on mismatch, resumable ingests."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.imagestore.content import ContentStore
from vocab.errors import (
    DataLoss,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

DATA = bytes(range(256)) * 1000
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


def chunks(data: bytes, offset: int = 0, size: int = 10_000) -> Iterator[bytes]:
    for i in range(offset, len(data), size):
        yield data[i:i + size]


def test_ingest_commits_verified_blob(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    seen: list[int] = []
    assert store.ingest(DIGEST, len(DATA), lambda off: chunks(DATA, off), seen.append)
    assert store.read(DIGEST) == DATA and store.has(DIGEST, len(DATA))
    assert seen[-1] == len(DATA)
    # Already present: nothing is fetched.
    assert not store.ingest(DIGEST, len(DATA), lambda off: pytest.fail("fetched"))
    assert list(store.ingests.iterdir()) == []


def test_mismatch_commits_nothing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    bad = b"x" + DATA[1:]
    with pytest.raises(DataLoss):
        store.ingest(DIGEST, len(DATA), lambda off: chunks(bad, off))
    assert not store.has(DIGEST)
    assert list(store.ingests.iterdir()) == []


def test_oversized_stream_is_data_loss(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with pytest.raises(DataLoss):
        store.ingest(DIGEST, len(DATA), lambda off: chunks(DATA + b"extra", off))
    assert not store.has(DIGEST)


def test_truncated_stream_keeps_partial_and_resumes(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with pytest.raises(DataLoss, match="truncated"):
        store.ingest(DIGEST, len(DATA), lambda off: chunks(DATA[:50_000], off))
    assert store.partial_path(DIGEST).stat().st_size == 50_000
    offsets: list[int] = []

    def fetch(off: int) -> Iterator[bytes]:
        offsets.append(off)
        return chunks(DATA, off)

    assert store.ingest(DIGEST, len(DATA), fetch)
    assert offsets == [50_000]
    assert store.read(DIGEST) == DATA
    assert not store.partial_path(DIGEST).exists()


def test_dropped_connection_keeps_partial(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)

    def dropping(off: int) -> Iterator[bytes]:
        yield DATA[off:30_000]
        raise Unavailable("connection reset")

    with pytest.raises(Unavailable):
        store.ingest(DIGEST, len(DATA), dropping)
    assert store.partial_path(DIGEST).stat().st_size == 30_000
    assert store.ingest(DIGEST, len(DATA), lambda off: chunks(DATA, off))


def test_corrupt_partial_restarts_from_zero(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    store.partial_path(DIGEST).write_bytes(b"\0" * 1000)  # bytes that are not the blob's
    offsets: list[int] = []

    def fetch(off: int) -> Iterator[bytes]:
        offsets.append(off)
        return chunks(DATA, off)

    assert store.ingest(DIGEST, len(DATA), fetch)
    assert offsets == [1000, 0]
    assert store.read(DIGEST) == DATA


def test_concurrent_ingests_of_one_digest_fetch_once(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    calls: list[int] = []
    results: list[bool] = []

    def fetch(off: int) -> Iterator[bytes]:
        calls.append(off)
        return chunks(DATA, off, 1000)

    threads = [threading.Thread(target=lambda: results.append(
        store.ingest(DIGEST, len(DATA), fetch))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sorted(results) == [False, False, False, True]
    assert store.read(DIGEST) == DATA


def test_bad_digests_and_missing_blobs(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with pytest.raises(InvalidArgument):
        store.path("sha256:../../etc/passwd")
    with pytest.raises(NotFound):
        store.read(DIGEST)
    store.write(DIGEST, DATA)
    store.delete(DIGEST)
    assert not store.has(DIGEST)


def test_reserve_refuses_a_download_before_it_starts(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixed filesystem: 1 000 000 bytes free (the real one changes under other writers).
    fake = os.statvfs_result((4096, 1, 0, 0, 1_000_000, 0, 0, 0, 0, 255))
    monkeypatch.setattr(os, "statvfs", lambda path: fake)
    store = ContentStore(tmp_path, min_free=1_000_000 - len(DATA) + 1)
    with pytest.raises(ResourceExhausted, match=f"no space for blob {DIGEST}: it needs "
                                                f"{len(DATA)} more bytes, 1000000 are free"):
        store.ingest(DIGEST, len(DATA), lambda off: pytest.fail("fetched"))
    assert list(store.ingests.iterdir()) == []
    # A resume needs only the rest: with 200 000 of 256 000 bytes kept it fits.
    store.partial_path(DIGEST).write_bytes(DATA[:200_000])
    assert store.ingest(DIGEST, len(DATA), lambda off: chunks(DATA, off))
    assert store.read(DIGEST) == DATA


def test_stream_failing_before_its_first_byte_leaves_no_partial(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)

    def failing(off: int) -> Iterator[bytes]:
        raise Unavailable("registry went away")
        yield b""

    with pytest.raises(Unavailable):
        store.ingest(DIGEST, len(DATA), failing)
    with pytest.raises(DataLoss, match="truncated"):
        store.ingest(DIGEST, len(DATA), lambda off: iter(()))
    assert list(store.ingests.iterdir()) == []
