"""The manifest cache: content by digest is fetched upstream once; tags always go up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.registry.descriptors import Descriptor, Platform
from services.registry.manifest_cache import ManifestCache
from services.registry.manifests import ManifestContent
from services.registry.resolver import Resolver
from vocab.errors import DataLoss

from .fakeupstream import HOST, OCI_INDEX, OCI_MANIFEST, Upstream, desc, dumps, image, sha


@pytest.fixture
def up() -> Upstream:
    return Upstream()


@pytest.fixture
def cache() -> ManifestCache:
    return ManifestCache()


@pytest.fixture
def resolver(up: Upstream, cache: ManifestCache) -> Iterator[Resolver]:
    res = Resolver(transport=up.transport(), sleep=lambda _: None, manifest_cache=cache)
    yield res
    res.close()


def manifest_gets(up: Upstream) -> list[str]:
    return [r.url.path for r in up.requests if "/manifests/" in r.url.path]


def test_index_children_and_digest_refs_come_from_the_cache(
        up: Upstream, resolver: Resolver, cache: ManifestCache) -> None:
    amd = image([b"amd-layer"], config=b'{"architecture":"amd64"}')
    up.add_manifest("demo/multi", sha(amd), amd, OCI_MANIFEST)
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        desc(OCI_MANIFEST, amd, platform={"os": "linux", "architecture": "amd64"})]})
    up.add_manifest("demo/multi", "2", index, OCI_INDEX)
    amd64 = Platform("linux", "amd64")

    first = resolver.resolve(f"{HOST}/demo/multi:2", amd64)
    second = resolver.resolve(f"{HOST}/demo/multi:2", amd64)  # the tag again, child cached
    by_digest = resolver.resolve(f"{HOST}/demo/multi@{sha(index)}", amd64)  # all cached
    assert (first.root, first.manifest) == (second.root, second.manifest) \
        == (by_digest.root, by_digest.manifest)
    assert manifest_gets(up) == ["/v2/demo/multi/manifests/2",
                                 f"/v2/demo/multi/manifests/{sha(amd)}",
                                 "/v2/demo/multi/manifests/2"]
    assert cache.hits == 3


def test_a_size_that_disagrees_is_not_served_from_the_cache(
        up: Upstream, resolver: Resolver) -> None:
    body = image([b"x"])
    up.add_manifest("demo/app", "1", body, OCI_MANIFEST)
    up.add_manifest("demo/app", sha(body), body, OCI_MANIFEST)
    resolver.resolve(f"{HOST}/demo/app:1")
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**desc(OCI_MANIFEST, body, platform={"os": "linux", "architecture": "amd64"}),
         "size": len(body) + 1}]})  # an index entry that lies about the size
    up.add_manifest("demo/app", "lying", index, OCI_INDEX)
    with pytest.raises(DataLoss, match="size mismatch"):
        resolver.resolve(f"{HOST}/demo/app:lying", Platform("linux", "amd64"))


def _content(data: bytes) -> ManifestContent:
    return ManifestContent(Descriptor(OCI_MANIFEST, sha(data), len(data)), data, ())


def test_least_recently_used_go_first() -> None:
    cache = ManifestCache(max_bytes=250)
    a, b, c = (_content(bytes([n]) * 100) for n in range(3))
    cache.put(a)
    cache.put(b)
    assert cache.get(a.descriptor.digest) == a  # a is now the most recent
    cache.put(c)  # 300 bytes > 250: b goes
    assert cache.get(b.descriptor.digest) is None
    assert cache.get(a.descriptor.digest) == a and cache.get(c.descriptor.digest) == c
    cache.put(_content(b"y" * 251))  # bigger than the whole cache: not kept
    assert len(cache) == 2
