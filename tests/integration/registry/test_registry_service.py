"""muelle-registry as a real process against the real distribution registry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from muelle.registry.v1 import registry_pb2, registry_pb2_grpc
from muelle.types.v1 import types_pb2

from tests.support.fake_registry import FakeRegistry
from tests.support.registry import free_port
from vocab.errors import DataLoss, InvalidArgument, NotFound, Unavailable

Stub = registry_pb2_grpc.RegistryStub
MiB = 1024 * 1024


def fetch(stub: Stub, repository: str, desc: types_pb2.Descriptor) -> list[bytes]:
    request = registry_pb2.FetchBlobRequest(repository=repository, descriptor=desc)
    return [chunk.data for chunk in stub.FetchBlob(request)]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_parse_reference(stub: Stub) -> None:
    got = stub.ParseReference(registry_pb2.ParseReferenceRequest(reference="busybox"))
    assert (got.domain, got.path, got.tag) == ("docker.io", "library/busybox", "latest")
    assert got.canonical == "docker.io/library/busybox:latest"
    with pytest.raises(InvalidArgument):
        stub.ParseReference(registry_pb2.ParseReferenceRequest(reference="Bad/Name"))


def test_resolve_and_fetch_busybox(stub: Stub, busybox_ref: str, busybox_layout: Path) -> None:
    index = json.loads((busybox_layout / "index.json").read_text())
    want = index["manifests"][0]["digest"]
    res = stub.Resolve(registry_pb2.ResolveRequest(reference=busybox_ref))
    assert res.canonical == busybox_ref
    assert res.manifest.descriptor.digest == want == sha(res.manifest.content)
    assert res.root == res.manifest
    manifest = json.loads(res.manifest.content)
    for desc in [manifest["config"], *manifest["layers"]]:
        pb = types_pb2.Descriptor(media_type=desc["mediaType"], digest=desc["digest"],
                                  size=desc["size"])
        chunks = fetch(stub, res.repository, pb)
        data = b"".join(chunks)
        assert sha(data) == desc["digest"] and len(data) == desc["size"]
        assert all(len(c) <= MiB for c in chunks)
        blob = busybox_layout / "blobs" / "sha256" / desc["digest"].split(":")[1]
        assert data == blob.read_bytes()


def test_fetch_blob_from_offset(stub: Stub, busybox_ref: str) -> None:
    res = stub.Resolve(registry_pb2.ResolveRequest(reference=busybox_ref))
    layer = json.loads(res.manifest.content)["layers"][0]
    desc = types_pb2.Descriptor(digest=layer["digest"], size=layer["size"])
    whole = b"".join(fetch(stub, res.repository, desc))
    request = registry_pb2.FetchBlobRequest(repository=res.repository, descriptor=desc,
                                            offset=1000)
    assert b"".join(c.data for c in stub.FetchBlob(request)) == whole[1000:]


def test_resolve_by_digest(stub: Stub, busybox_ref: str) -> None:
    res = stub.Resolve(registry_pb2.ResolveRequest(reference=busybox_ref))
    repo = busybox_ref.rsplit(":", 1)[0]
    by_digest = stub.Resolve(registry_pb2.ResolveRequest(
        reference=f"{repo}@{res.manifest.descriptor.digest}"))
    assert by_digest.manifest.content == res.manifest.content


def test_index_platform_selection(stub: Stub, multi_platform: dict[str, str]) -> None:
    ref = multi_platform["ref"]
    for arch in ("amd64", "arm64"):
        res = stub.Resolve(registry_pb2.ResolveRequest(
            reference=ref, platform=types_pb2.Platform(os="linux", architecture=arch)))
        assert res.root.descriptor.digest == multi_platform["index"]
        assert res.root.descriptor.media_type == "application/vnd.oci.image.index.v1+json"
        assert res.manifest.descriptor.digest == multi_platform[arch]
        assert sha(res.manifest.content) == multi_platform[arch]


def test_index_fallback_and_no_match(stub: Stub, multi_platform: dict[str, str]) -> None:
    # An arm/v7 host cannot run either image; the message lists what there is.
    with pytest.raises(NotFound) as err:
        stub.Resolve(registry_pb2.ResolveRequest(
            reference=multi_platform["ref"],
            platform=types_pb2.Platform(os="linux", architecture="arm", variant="v7")))
    assert "linux/amd64" in err.value.message and "linux/arm64" in err.value.message
    assert "unknown" not in err.value.message


def test_unknown_tag_is_not_found(stub: Stub, busybox_ref: str) -> None:
    repo = busybox_ref.rsplit(":", 1)[0]
    with pytest.raises(NotFound, match="manifest unknown"):
        stub.Resolve(registry_pb2.ResolveRequest(reference=f"{repo}:no-such-tag"))


def test_unknown_blob_is_not_found(stub: Stub, busybox_ref: str) -> None:
    desc = types_pb2.Descriptor(digest=sha(b"nothing"), size=7)
    with pytest.raises(NotFound, match="blob unknown"):
        fetch(stub, busybox_ref.rsplit(":", 1)[0], desc)


def test_unreachable_registry_is_unavailable(stub: Stub) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(Unavailable, match=f"cannot reach registry 127.0.0.1:{port}"):
        stub.Resolve(registry_pb2.ResolveRequest(reference=f"127.0.0.1:{port}/demo/x:1"))


def test_corrupt_blob_is_data_loss(stub: Stub, busybox_layout: Path) -> None:
    with FakeRegistry(busybox_layout, corrupt_blobs=True) as fake:
        res = stub.Resolve(registry_pb2.ResolveRequest(reference=f"{fake.host}/demo/bb:1"))
        layer = json.loads(res.manifest.content)["layers"][0]
        desc = types_pb2.Descriptor(digest=layer["digest"], size=layer["size"])
        with pytest.raises(DataLoss, match=f"digest mismatch for {layer['digest']}: got"):
            fetch(stub, res.repository, desc)


def test_garbage_manifest_is_data_loss(stub: Stub, busybox_layout: Path) -> None:
    with FakeRegistry(busybox_layout, garbage_manifest=True) as fake, \
            pytest.raises(DataLoss, match="not JSON"):
        stub.Resolve(registry_pb2.ResolveRequest(reference=f"{fake.host}/demo/bb:1"))


def test_cancelled_fetch_leaves_service_healthy(stub: Stub, busybox_ref: str) -> None:
    res = stub.Resolve(registry_pb2.ResolveRequest(reference=busybox_ref))
    layer = json.loads(res.manifest.content)["layers"][0]
    desc = types_pb2.Descriptor(digest=layer["digest"], size=layer["size"])
    stream = stub.FetchBlob(registry_pb2.FetchBlobRequest(repository=res.repository,
                                                          descriptor=desc))
    stream.cancel()
    assert list(stream) == []
    assert sha(b"".join(fetch(stub, res.repository, desc))) == layer["digest"]
