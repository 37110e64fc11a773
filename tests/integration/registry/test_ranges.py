"""A large blob from the real distribution registry as parallel Range requests."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from services.core.config import Config
from services.registry.descriptors import Descriptor
from services.registry.ranges import MIN_SIZE, PART, PROBE, RangedFetch
from services.registry.resolver import Resolver
from tests.support.registry import LocalRegistry

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class Recording(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.ranges: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.ranges.append(request.headers.get("Range", ""))
        return super().handle_request(request)


@pytest.fixture(scope="module")
def big_blob(registry: LocalRegistry) -> tuple[str, bytes]:
    data = os.urandom(MIN_SIZE + PART // 2)  # 4 full parts and a half one
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    repo = "demo/ranges"
    started = httpx.post(f"{registry.url}/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = httpx.URL(registry.url).join(started.headers["Location"])
    resp = httpx.put(location.copy_merge_params({"digest": digest}), content=data,
                     headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    return f"{registry.host}/{repo}", data


def fetch(repo: str, data: bytes, resolver: Resolver) -> bytes:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        return b"".join(resolver.fetch_blob(repo, Descriptor(LAYER, digest, len(data))))
    finally:
        resolver.close()


def test_a_slow_first_range_brings_the_rest_in_parts(big_blob: tuple[str, bytes]) -> None:
    repo, data = big_blob
    transport = Recording()
    slow = RangedFetch(4, fast=float("inf"))  # as if the first range had crawled in
    assert fetch(repo, data, Resolver(Config(), transport=transport, ranges=slow)) == data
    starts = sorted(int(r.removeprefix("bytes=").split("-")[0]) for r in transport.ranges)
    assert starts == [0, *range(PROBE, len(data), PART)]


def test_from_a_fast_registry_the_rest_comes_in_one_request(
        big_blob: tuple[str, bytes]) -> None:
    repo, data = big_blob
    transport = Recording()
    # As if the first range had come fast (fast=0: any speed is): whether loopback beats
    # FAST on a loaded machine is not what this checks, the request sequence after it is.
    quick = RangedFetch(4, fast=0.0)
    assert fetch(repo, data, Resolver(Config(), transport=transport, ranges=quick)) == data
    assert transport.ranges == [f"bytes=0-{PROBE - 1}", f"bytes={PROBE}-{len(data) - 1}"]


def test_parallel_ranges_1_asks_once(big_blob: tuple[str, bytes]) -> None:
    repo, data = big_blob
    cfg = Config()
    cfg.registry.parallel_ranges = 1
    transport = Recording()
    assert fetch(repo, data, Resolver(cfg, transport=transport)) == data
    assert transport.ranges == [""]
