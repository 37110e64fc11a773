"""The registry service's blob cache: single flight, LRU eviction, only whole blobs."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.registry.cache import BlobCache
from vocab.errors import DataLoss


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Upstream:
    """Counts fetches; yields slowly so concurrent fetches overlap."""

    def __init__(self, data: bytes, fail_at: int = -1) -> None:
        self.data, self.fail_at, self.calls = data, fail_at, 0
        self.offsets: list[int] = []

    def __call__(self, offset: int) -> Iterator[bytes]:
        self.calls += 1
        self.offsets.append(offset)
        for i in range(offset, len(self.data), 1000):
            if 0 <= self.fail_at <= i:
                raise DataLoss("digest mismatch")
            time.sleep(0.001)
            yield self.data[i:i + 1000]


def test_concurrent_fetches_go_upstream_once(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    cache, up = BlobCache(tmp_path, 10**9), Upstream(data)
    results: list[bytes] = []

    def pull() -> None:
        results.append(b"".join(cache.fetch(digest(data), len(data), 0, up)))

    threads = [threading.Thread(target=pull) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [data] * 5 and up.calls == 1
    assert b"".join(cache.fetch(digest(data), len(data), 20_000, up)) == data[20_000:]
    assert up.calls == 1  # a later resume is served from the cache too


def test_a_failed_fetch_leaves_nothing(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    cache = BlobCache(tmp_path, 10**9)
    with pytest.raises(DataLoss):
        b"".join(cache.fetch(digest(data), len(data), 0, Upstream(data, fail_at=5000)))
    assert list(tmp_path.iterdir()) == []
    stream = cache.fetch(digest(data), len(data), 0, Upstream(data))
    next(stream)
    stream.close()  # a partial of 1000 bytes, completed below with other bytes
    with pytest.raises(DataLoss, match="digest mismatch"):
        b"".join(cache.fetch(digest(data), len(data), 0, Upstream(os.urandom(10_000))))
    assert list(tmp_path.iterdir()) == []


def test_a_cut_fetch_resumes_from_its_partial(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    stream = BlobCache(tmp_path, 10**9).fetch(digest(data), len(data), 0, Upstream(data))
    assert next(stream) + next(stream) == data[:2000]
    stream.close()  # the client went away (or the service died) after 2000 bytes
    assert not BlobCache(tmp_path, 10**9).path(digest(data)).exists()

    cache = BlobCache(tmp_path, 10**9)  # a restart keeps the partial
    up = Upstream(data)
    assert b"".join(cache.fetch(digest(data), len(data), 1500, up)) == data[1500:]
    assert up.offsets == [2000]  # only the rest came from upstream
    assert cache.path(digest(data)).read_bytes() == data  # and the whole blob is kept
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_resume_beyond_the_partial_is_not_cached(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    cache = BlobCache(tmp_path, 10**9)
    up = Upstream(data)
    assert b"".join(cache.fetch(digest(data), len(data), 3000, up)) == data[3000:]
    assert up.offsets == [3000] and list(tmp_path.iterdir()) == []


def test_least_recently_used_blobs_go_first(tmp_path: Path) -> None:
    blobs = [os.urandom(4000) for _ in range(3)]
    cache = BlobCache(tmp_path, 9000)  # room for two
    for i, b in enumerate(blobs[:2]):
        b"".join(cache.fetch(digest(b), len(b), 0, Upstream(b)))
        os.utime(cache.path(digest(b)), (1000 + i, 1000 + i))
    b"".join(cache.fetch(digest(blobs[0]), 4000, 0, Upstream(blobs[0])))  # used again
    b"".join(cache.fetch(digest(blobs[2]), 4000, 0, Upstream(blobs[2])))
    kept = {p.name for p in tmp_path.iterdir()}
    assert cache.path(digest(blobs[1])).name not in kept
    assert {cache.path(digest(b)).name for b in (blobs[0], blobs[2])} == kept
