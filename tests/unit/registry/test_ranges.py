"""A large blob fetched as several Range requests at once (registry/ranges.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.registry.descriptors import Descriptor
from services.registry.ranges import RangedFetch
from services.registry.resolver import Resolver
from vocab.errors import DataLoss

from .fakeupstream import HOST, OCI_LAYER, FailingStream, Upstream, sha

REPO = f"{HOST}/demo/app"
BLOB = bytes(range(256)) * 400  # 102,400 bytes: 11 parts of 10,000, the last one short
PART = 10_000
PATH = f"/v2/demo/app/blobs/{sha(BLOB)}"


@pytest.fixture
def up() -> Upstream:
    upstream = Upstream()
    upstream.add_blob(BLOB)
    return upstream


def resolver(up: Upstream, parallel: int = 4, min_size: int = 50_000,
             fast: float = float("inf")) -> Resolver:
    # fast=inf: no first range is fast enough to skip the parts (a mock answers at once).
    return Resolver(transport=up.transport(), sleep=lambda _: None, chunk_size=4096,
                    ranges=RangedFetch(parallel, part=PART, min_size=min_size, fast=fast,
                                       probe=PART))


def blob(size: int = len(BLOB)) -> Descriptor:
    return Descriptor(OCI_LAYER, sha(BLOB), size)


def ranges_asked(up: Upstream) -> list[str]:
    return sorted((r.headers.get("Range", "") for r in up.requests),
                  key=lambda h: int(h.removeprefix("bytes=").split("-")[0] or 0))


def fetch(res: Resolver, offset: int = 0) -> bytes:
    try:
        return b"".join(res.fetch_blob(REPO, blob(), offset))
    finally:
        res.close()


def test_a_large_blob_comes_in_parts_and_in_order(up: Upstream) -> None:
    assert fetch(resolver(up)) == BLOB
    want = [f"bytes={s}-{min(s + PART, len(BLOB)) - 1}" for s in range(0, len(BLOB), PART)]
    assert ranges_asked(up) == want


def test_a_resume_from_an_offset_starts_the_parts_there(up: Upstream) -> None:
    assert fetch(resolver(up), offset=35_000) == BLOB[35_000:]
    asked = ranges_asked(up)
    assert asked[0] == "bytes=35000-44999" and asked[-1] == f"bytes=95000-{len(BLOB) - 1}"


def test_after_a_fast_first_range_the_rest_comes_in_one_request(up: Upstream) -> None:
    assert fetch(resolver(up, fast=0)) == BLOB
    assert ranges_asked(up) == ["bytes=0-9999", f"bytes=10000-{len(BLOB) - 1}"]


def test_small_blobs_and_parallel_1_use_one_request(up: Upstream) -> None:
    assert fetch(resolver(up, min_size=len(BLOB) + 1)) == BLOB
    assert fetch(resolver(up, parallel=1)) == BLOB
    assert [r.headers.get("Range") for r in up.requests] == [None, None]


def test_a_registry_without_range_support_is_read_as_one_stream(up: Upstream) -> None:
    up.honour_range = False
    assert fetch(resolver(up)) == BLOB
    assert len(up.requests) == 1


def test_a_dropped_part_resumes_within_its_range(up: Upstream) -> None:
    drops = [True]

    def flaky(request: httpx.Request) -> httpx.Response:
        if drops and request.headers.get("Range") == "bytes=30000-39999":
            drops.pop()
            return httpx.Response(206, stream=FailingStream(BLOB[30_000:33_000]), headers={
                "Content-Range": f"bytes 30000-39999/{len(BLOB)}"})
        return up.serve(request)

    up.overrides[PATH] = flaky
    assert fetch(resolver(up)) == BLOB
    assert "bytes=33000-39999" in ranges_asked(up)


def test_a_part_answered_without_range_is_data_loss(up: Upstream) -> None:
    def stop_ranges(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Range", "").startswith("bytes=50000-"):
            return httpx.Response(200, content=BLOB)
        return up.serve(request)

    up.overrides[PATH] = stop_ranges
    with pytest.raises(DataLoss, match="stopped answering Range"):
        fetch(resolver(up))


def test_a_part_with_wrong_bytes_fails_the_digest(up: Upstream) -> None:
    def corrupt(request: httpx.Request) -> httpx.Response:
        resp = up.serve(request)
        if request.headers.get("Range", "").startswith("bytes=70000-"):
            return httpx.Response(206, content=b"\0" * PART, headers=resp.headers)
        return resp

    up.overrides[PATH] = corrupt
    res = resolver(up)
    got = bytearray()
    with pytest.raises(DataLoss, match="digest mismatch"):
        for chunk in res.fetch_blob(REPO, blob()):
            got += chunk
    res.close()
    assert len(got) < len(BLOB)  # the last chunk is held back


def test_at_most_parallel_ranges_are_asked_ahead(up: Upstream) -> None:
    res = resolver(up, parallel=3)
    stream = res.fetch_blob(REPO, blob())
    assert next(iter(stream))  # the first chunk: the first range was read
    threading.Event().wait(0.2)  # let the threads ask for what they may
    assert len(up.requests) <= 1 + 3
    list(stream)
    res.close()
    assert len(up.requests) == 11


class Held(httpx.SyncByteStream):
    """A range that sends 100 bytes at a time, each only once ``gate`` is open; it counts
    what it sent and tells ``waiting`` when it first stands at the gate."""

    def __init__(self, data: bytes, gate: threading.Event, waiting: threading.Condition,
                 parked: list[Held]) -> None:
        self.data, self.gate, self.waiting, self.parked = data, gate, waiting, parked
        self.chunks = (len(data) + 99) // 100
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        with self.waiting:
            self.parked.append(self)
            self.waiting.notify_all()
        for start in range(0, len(self.data), 100):
            self.gate.wait()
            self.sent += 1
            yield self.data[start : start + 100]


def test_an_abandoned_fetch_stops_its_ranges(up: Upstream) -> None:
    """Ranges in flight when the consumer goes away stop at their next chunk: each one
    held at its gate is let go only after the close, and must not read to its end."""
    gate, waiting = threading.Event(), threading.Condition()
    parked: list[Held] = []

    def held(request: httpx.Request) -> httpx.Response:
        resp = up.serve(request)
        if request.headers.get("Range", "").startswith(("bytes=0-", f"bytes={PART}-")):
            return resp  # the probe and the first range come at once
        return httpx.Response(206, stream=Held(resp.content, gate, waiting, parked),
                              headers=resp.headers)

    up.overrides[PATH] = held
    res = resolver(up)
    stream: Iterator[bytes] = iter(res.fetch_blob(REPO, blob()))
    got = 0
    # The probe's part and the first range, less what the resolver keeps until its next
    # 4096-byte chunk fills: asking for more would wait on a held range.
    while got + 4096 <= 2 * PART:
        got += len(next(stream))
    with waiting:  # every range in flight (parallel=4) stands at its gate
        assert waiting.wait_for(lambda: len(parked) == 4, timeout=60), parked
    stream.close()  # type: ignore[attr-defined]
    gate.set()
    for thread in threading.enumerate():
        if thread.name.startswith("blob-range"):
            thread.join(60)
            assert not thread.is_alive()
    assert all(h.sent < h.chunks for h in parked), [(h.sent, h.chunks) for h in parked]
    res.close()


def test_a_descriptor_bigger_than_the_blob_is_data_loss(up: Upstream) -> None:
    res = resolver(up)
    with pytest.raises(DataLoss):  # a short range, or a 416 for one past the end
        list(res.fetch_blob(REPO, blob(len(BLOB) + 3 * PART)))
    with pytest.raises(DataLoss, match="size mismatch.*refused the range"):
        list(res._read_range(res_ref(), blob(), len(BLOB) + 10, len(BLOB) + 20))
    res.close()


def res_ref() -> Any:
    from vocab import reference
    return reference.parse(REPO)
