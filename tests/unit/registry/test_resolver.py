from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from services.registry.descriptors import Descriptor, Platform
from services.registry.resolver import Resolver
from vocab.errors import DataLoss, InvalidArgument, NotFound, Unavailable

from .fakeupstream import (
    HOST,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    FailingStream,
    Upstream,
    desc,
    dumps,
    image,
    sha,
)

REPO = f"{HOST}/demo/app"
LAYER = bytes(range(256)) * 40  # 10 KiB, several chunks at chunk_size=4096


@pytest.fixture
def up() -> Upstream:
    upstream = Upstream()
    upstream.add_blob(LAYER)
    upstream.add_manifest("demo/app", "1", image([LAYER]), OCI_MANIFEST)
    return upstream


@pytest.fixture
def resolver(up: Upstream) -> Iterator[Resolver]:
    res = Resolver(transport=up.transport(), sleep=lambda _: None, chunk_size=4096)
    yield res
    res.close()


def layer_desc() -> Descriptor:
    return Descriptor(OCI_LAYER, sha(LAYER), len(LAYER))


def two_platform_index(up: Upstream) -> tuple[bytes, bytes, bytes]:
    amd = image([b"amd-layer"], config=b'{"architecture":"amd64"}')
    arm = image([b"arm-layer"], config=b'{"architecture":"arm64"}')
    up.add_manifest("demo/multi", sha(amd), amd, OCI_MANIFEST)
    up.add_manifest("demo/multi", sha(arm), arm, OCI_MANIFEST)
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        desc(OCI_MANIFEST, amd, platform={"os": "linux", "architecture": "amd64"}),
        desc(OCI_MANIFEST, arm, platform={"os": "linux", "architecture": "arm64",
                                          "variant": "v8"}),
    ]})
    up.add_manifest("demo/multi", "2", index, OCI_INDEX)
    return index, amd, arm


def test_resolve_tag_to_manifest(up: Upstream, resolver: Resolver) -> None:
    res = resolver.resolve(f"{REPO}:1")
    body = up.manifests[("demo/app", "1")][0]
    assert res.canonical == f"{REPO}:1" and res.repository == REPO
    assert res.root == res.manifest
    assert res.manifest.content == body and res.manifest.descriptor.digest == sha(body)
    accept = up.requests[0].headers["Accept"]
    assert OCI_INDEX in accept and "manifest.list.v2+json" in accept


def test_resolve_index_selects_platform(up: Upstream, resolver: Resolver) -> None:
    index, amd, arm = two_platform_index(up)
    res = resolver.resolve(f"{HOST}/demo/multi:2", Platform("linux", "arm64", "v8"))
    assert res.root.content == index and res.root.is_index
    assert res.manifest.content == arm
    assert res.manifest.descriptor.digest == sha(arm)
    assert resolver.resolve(f"{HOST}/demo/multi:2",
                            Platform("linux", "amd64")).manifest.content == amd


def test_resolve_index_without_match(up: Upstream, resolver: Resolver) -> None:
    two_platform_index(up)
    with pytest.raises(NotFound, match="available: linux/amd64, linux/arm64/v8"):
        resolver.resolve(f"{HOST}/demo/multi:2", Platform("linux", "s390x"))


def test_index_child_digest_mismatch(up: Upstream, resolver: Resolver) -> None:
    _, amd, _ = two_platform_index(up)
    tampered = amd + b"\n"  # same JSON, different bytes
    up.manifests[("demo/multi", sha(amd))] = (tampered, OCI_MANIFEST)
    with pytest.raises(DataLoss, match=f"digest mismatch for {sha(amd)}"):
        resolver.resolve(f"{HOST}/demo/multi:2", Platform("linux", "amd64"))


def test_resolve_by_digest(up: Upstream, resolver: Resolver) -> None:
    body = up.manifests[("demo/app", "1")][0]
    res = resolver.resolve(f"{REPO}@{sha(body)}")
    assert res.manifest.content == body and res.canonical == f"{REPO}@{sha(body)}"


def test_resolve_by_digest_mismatch(up: Upstream, resolver: Resolver) -> None:
    body = up.manifests[("demo/app", "1")][0]
    other = image([b"other"])
    up.manifests[("demo/app", sha(body))] = (other, OCI_MANIFEST)
    # A registry lying in Docker-Content-Digest too must still be caught.
    with pytest.raises(DataLoss, match="digest mismatch"):
        resolver.resolve(f"{REPO}@{sha(body)}")


def test_unknown_tag(resolver: Resolver) -> None:
    with pytest.raises(NotFound, match=f"manifest for {REPO}:nope not found"):
        resolver.resolve(f"{REPO}:nope")


def test_bad_reference(resolver: Resolver) -> None:
    with pytest.raises(InvalidArgument):
        resolver.resolve("UPPER/case")


def test_oversize_manifest_by_content_length(up: Upstream, resolver: Resolver) -> None:
    up.overrides["/v2/demo/app/manifests/big"] = lambda r: httpx.Response(
        200, content=b" " * (4 * 1024 * 1024 + 1), headers={"Content-Type": OCI_MANIFEST})
    with pytest.raises(InvalidArgument, match="limit"):
        resolver.resolve(f"{REPO}:big")


def test_fetch_blob_verifies_and_chunks(up: Upstream, resolver: Resolver) -> None:
    chunks = list(resolver.fetch_blob(REPO, layer_desc()))
    assert b"".join(chunks) == LAYER
    assert len(chunks) == 3 and all(len(c) <= 4096 for c in chunks)


def test_fetch_blob_digest_mismatch_withholds_last_chunk(up: Upstream,
                                                         resolver: Resolver) -> None:
    corrupt = bytearray(LAYER)
    corrupt[-1] ^= 0xFF
    up.blobs[sha(LAYER)] = bytes(corrupt)
    got = b""
    with pytest.raises(DataLoss) as err:
        for chunk in resolver.fetch_blob(REPO, layer_desc()):
            got += chunk
    assert err.value.message == f"digest mismatch for {sha(LAYER)}: got {sha(bytes(corrupt))}"
    assert len(got) < len(LAYER)


def test_fetch_blob_unverified_leaves_the_digest_to_the_caller(up: Upstream,
                                                               resolver: Resolver) -> None:
    # The image store hashes every blob as it writes it: the registry service does not
    # hash again, and the bytes go on as they come, the last chunk included.
    corrupt = bytearray(LAYER)
    corrupt[-1] ^= 0xFF
    up.blobs[sha(LAYER)] = bytes(corrupt)
    chunks = list(resolver.fetch_blob(REPO, layer_desc(), verify=False))
    assert b"".join(chunks) == bytes(corrupt)
    assert [len(c) for c in chunks] == [4096, 4096, len(LAYER) - 8192]


@pytest.mark.parametrize("served", [LAYER[:-10], LAYER + b"extra"])
def test_fetch_blob_unverified_still_checks_the_size(up: Upstream, resolver: Resolver,
                                                     served: bytes) -> None:
    up.blobs[sha(LAYER)] = served
    with pytest.raises(DataLoss, match="size mismatch"):
        list(resolver.fetch_blob(REPO, layer_desc(), verify=False))


@pytest.mark.parametrize("served", [LAYER[:-10], LAYER + b"extra"])
def test_fetch_blob_size_mismatch(up: Upstream, resolver: Resolver, served: bytes) -> None:
    up.blobs[sha(LAYER)] = served
    with pytest.raises(DataLoss, match="size mismatch"):
        list(resolver.fetch_blob(REPO, layer_desc()))


def test_fetch_blob_unknown(resolver: Resolver) -> None:
    with pytest.raises(NotFound, match="blob unknown"):
        list(resolver.fetch_blob(REPO, Descriptor(OCI_LAYER, sha(b"missing"), 7)))


@pytest.mark.parametrize(("repo", "digest", "offset"), [
    (f"{REPO}:1", sha(LAYER), 0),
    (REPO, "sha256:short", 0),
    (REPO, sha(LAYER), -1),
    (REPO, sha(LAYER), len(LAYER) + 1),
])
def test_fetch_blob_bad_arguments(resolver: Resolver, repo: str, digest: str,
                                  offset: int) -> None:
    with pytest.raises(InvalidArgument):
        resolver.fetch_blob(repo, Descriptor(OCI_LAYER, digest, len(LAYER)), offset)


@pytest.mark.parametrize("honour_range", [True, False])
def test_fetch_blob_from_offset(up: Upstream, resolver: Resolver, honour_range: bool) -> None:
    up.honour_range = honour_range
    got = b"".join(resolver.fetch_blob(REPO, layer_desc(), offset=5000))
    assert got == LAYER[5000:]
    assert up.requests[-1].headers["Range"] == "bytes=5000-"


def test_fetch_blob_resumes_after_dropped_connection(up: Upstream,
                                                     resolver: Resolver) -> None:
    path = f"/v2/demo/app/blobs/{sha(LAYER)}"
    drops = [True]

    def flaky(request: httpx.Request) -> httpx.Response:
        if drops and "Range" not in request.headers:
            drops.pop()
            return httpx.Response(200, stream=FailingStream(LAYER[:6000]))
        del up.overrides[path]
        return up.handle(request)

    up.overrides[path] = flaky
    assert b"".join(resolver.fetch_blob(REPO, layer_desc())) == LAYER
    assert up.requests[-1].headers["Range"] == "bytes=6000-"


def test_fetch_blob_gives_up_after_bounded_resumes(up: Upstream, resolver: Resolver) -> None:
    up.overrides[f"/v2/demo/app/blobs/{sha(LAYER)}"] = lambda r: httpx.Response(
        200, stream=FailingStream(b""))
    with pytest.raises(Unavailable, match="failed after 0 bytes"):
        list(resolver.fetch_blob(REPO, layer_desc()))


def test_foreign_layer_from_urls(up: Upstream, resolver: Resolver) -> None:
    data = b"foreign layer"
    up.overrides["/layers/f.tgz"] = lambda r: httpx.Response(200, content=data)
    foreign = Descriptor(OCI_LAYER, sha(data), len(data),
                         urls=("https://cdn.test/layers/f.tgz",))
    assert b"".join(resolver.fetch_blob(REPO, foreign)) == data
