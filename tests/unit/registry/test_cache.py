"""The registry service's blob cache: single flight, LRU eviction, only whole blobs."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.core.errors import DataLoss
from services.registry.cache import BlobCache


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Upstream:
    """Counts fetches; yields slowly so concurrent fetches overlap."""

    def __init__(self, data: bytes, fail_at: int = -1) -> None:
        self.data, self.fail_at, self.calls = data, fail_at, 0

    def __call__(self, offset: int) -> Iterator[bytes]:
        self.calls += 1
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


def test_a_failed_or_cut_fetch_is_not_kept(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    cache = BlobCache(tmp_path, 10**9)
    with pytest.raises(DataLoss):
        b"".join(cache.fetch(digest(data), len(data), 0, Upstream(data, fail_at=5000)))
    stream = cache.fetch(digest(data), len(data), 0, Upstream(data))
    next(stream)
    stream.close()  # the client went away
    assert list(tmp_path.iterdir()) == []
    up = Upstream(data)
    assert b"".join(cache.fetch(digest(data), len(data), 3000, up)) == data[3000:]
    assert list(tmp_path.iterdir()) == []  # a resume of an uncached blob is not cached


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
