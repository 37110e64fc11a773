"""The servicer in-process over a real gRPC channel, with a faked upstream registry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from muelle.registry.v1 import registry_pb2, registry_pb2_grpc
from muelle.types.v1 import types_pb2

from services.core.client import connect
from services.core.server import ErrorInterceptor
from services.registry.cache import BlobCache
from services.registry.descriptors import Descriptor, Platform
from services.registry.resolver import Resolver
from services.registry.server import RegistryServicer, descriptor_from_pb, descriptor_to_pb
from vocab.errors import DataLoss, InvalidArgument, NotFound

from .fakeupstream import HOST, OCI_LAYER, OCI_MANIFEST, Upstream, image, sha

LAYER = b"layer bytes" * 100


@pytest.fixture
def upstream() -> Upstream:
    up = Upstream()
    up.add_blob(LAYER)
    up.add_manifest("demo/app", "1", image([LAYER]), OCI_MANIFEST)
    return up


@pytest.fixture
def stub(tmp_path: Path, upstream: Upstream) -> Iterator[registry_pb2_grpc.RegistryStub]:
    resolver = Resolver(transport=upstream.transport(), sleep=lambda _: None)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         interceptors=[ErrorInterceptor()])
    registry_pb2_grpc.add_RegistryServicer_to_server(RegistryServicer(resolver), server)
    address = f"unix://{tmp_path}/r.sock"
    server.add_insecure_port(f"unix:{tmp_path}/r.sock")
    server.start()
    try:
        yield connect(address, registry_pb2_grpc.RegistryStub, "registry")
    finally:
        server.stop(None).wait()
        resolver.close()


def test_descriptor_round_trip() -> None:
    desc = Descriptor(OCI_MANIFEST, sha(b"x"), 1, ("https://u",), {"a": "b"},
                      Platform("linux", "arm", "v7"))
    assert descriptor_from_pb(descriptor_to_pb(desc)) == desc
    bare = Descriptor(OCI_LAYER, sha(b"y"), 2)
    assert descriptor_from_pb(descriptor_to_pb(bare)) == bare


def test_resolve_and_fetch(stub: registry_pb2_grpc.RegistryStub) -> None:
    res = stub.Resolve(registry_pb2.ResolveRequest(
        reference=f"{HOST}/demo/app:1", platform=types_pb2.Platform(architecture="amd64")))
    assert res.repository == f"{HOST}/demo/app"
    assert res.manifest.descriptor.media_type == OCI_MANIFEST
    assert res.manifest.descriptor.digest == sha(res.manifest.content)
    desc = types_pb2.Descriptor(media_type=OCI_LAYER, digest=sha(LAYER), size=len(LAYER))
    chunks = stub.FetchBlob(registry_pb2.FetchBlobRequest(repository=res.repository,
                                                          descriptor=desc))
    assert b"".join(c.data for c in chunks) == LAYER


def test_errors_carry_their_kind(stub: registry_pb2_grpc.RegistryStub,
                                 upstream: Upstream) -> None:
    with pytest.raises(NotFound):
        stub.Resolve(registry_pb2.ResolveRequest(reference=f"{HOST}/demo/app:2"))
    with pytest.raises(InvalidArgument):
        stub.Resolve(registry_pb2.ResolveRequest(reference=""))
    upstream.blobs[sha(LAYER)] = LAYER[::-1]
    desc = types_pb2.Descriptor(digest=sha(LAYER), size=len(LAYER))
    with pytest.raises(DataLoss, match="digest mismatch"):
        list(stub.FetchBlob(registry_pb2.FetchBlobRequest(
            repository=f"{HOST}/demo/app", descriptor=desc)))
    with pytest.raises(InvalidArgument):
        list(stub.FetchBlob(registry_pb2.FetchBlobRequest(
            repository=f"{HOST}/demo/app", descriptor=types_pb2.Descriptor(digest="x"))))


def test_a_caller_that_verifies_gets_the_bytes_unhashed(
        stub: registry_pb2_grpc.RegistryStub, upstream: Upstream) -> None:
    # The image store checks the digest as it writes (content.ingest): refused there.
    upstream.blobs[sha(LAYER)] = LAYER[::-1]
    desc = types_pb2.Descriptor(digest=sha(LAYER), size=len(LAYER))
    got = b"".join(c.data for c in stub.FetchBlob(registry_pb2.FetchBlobRequest(
        repository=f"{HOST}/demo/app", descriptor=desc, caller_verifies=True)))
    assert got == LAYER[::-1]


def test_the_shared_cache_takes_only_verified_blobs(tmp_path: Path,
                                                    upstream: Upstream) -> None:
    # With the cache on, bytes are kept for other callers: hashed here whatever the
    # caller says it does.
    resolver = Resolver(transport=upstream.transport(), sleep=lambda _: None)
    cache = BlobCache(tmp_path / "cache", 10 << 20)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         interceptors=[ErrorInterceptor()])
    registry_pb2_grpc.add_RegistryServicer_to_server(
        RegistryServicer(resolver, cache=cache), server)
    server.add_insecure_port(f"unix:{tmp_path}/c.sock")
    server.start()
    try:
        stub = connect(f"unix://{tmp_path}/c.sock", registry_pb2_grpc.RegistryStub,
                       "registry")
        upstream.blobs[sha(LAYER)] = LAYER[::-1]
        desc = types_pb2.Descriptor(digest=sha(LAYER), size=len(LAYER))
        with pytest.raises(DataLoss, match="digest mismatch"):
            list(stub.FetchBlob(registry_pb2.FetchBlobRequest(
                repository=f"{HOST}/demo/app", descriptor=desc, caller_verifies=True)))
        assert not cache.path(sha(LAYER)).exists()
    finally:
        server.stop(None).wait()
        resolver.close()


@contextlib.contextmanager
def _servicer_at(address: str, servicer: RegistryServicer
                 ) -> Iterator[registry_pb2_grpc.RegistryStub]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         interceptors=[ErrorInterceptor()])
    registry_pb2_grpc.add_RegistryServicer_to_server(servicer, server)
    port = server.add_insecure_port(address)
    server.start()
    try:
        yield connect(address.replace(":0", f":{port}"), registry_pb2_grpc.RegistryStub,
                      "registry")
    finally:
        server.stop(None).wait()


def _locate(stub: registry_pb2_grpc.RegistryStub) -> registry_pb2.LocateBlobResponse:
    layer = types_pb2.Descriptor(media_type=OCI_LAYER, digest=sha(LAYER), size=len(LAYER))
    return stub.LocateBlob(registry_pb2.LocateBlobRequest(
        repository=f"{HOST}/demo/app", descriptor=layer))


def test_blob_locations_only_for_a_caller_on_this_host(tmp_path: Path,
                                                       upstream: Upstream) -> None:
    resolver = Resolver(transport=upstream.transport(), sleep=lambda _: None)
    with _servicer_at(f"unix://{tmp_path}/l.sock", RegistryServicer(resolver)) as stub:
        reply = _locate(stub)
        assert reply.url == f"http://{HOST}/v2/demo/app/blobs/{sha(LAYER)}"
    # Over TCP the caller may be on another host, where the URL names another server.
    with _servicer_at("127.0.0.1:0", RegistryServicer(resolver)) as stub:
        reply = _locate(stub)
        assert not reply.url and "another host" in reply.reason


@pytest.mark.parametrize("why", ["cache", "off"])
def test_no_blob_locations_with_the_cache_or_when_off(tmp_path: Path, upstream: Upstream,
                                                      why: str) -> None:
    resolver = Resolver(transport=upstream.transport(), sleep=lambda _: None)
    servicer = RegistryServicer(resolver, cache=BlobCache(tmp_path / "cache", 10 << 20)) \
        if why == "cache" else RegistryServicer(resolver, locations=False)
    with _servicer_at(f"unix://{tmp_path}/l.sock", servicer) as stub:
        reply = _locate(stub)
    assert not reply.url
    assert ("cache" if why == "cache" else "blob_locations") in reply.reason
    assert upstream.requests == []  # nothing asked of the registry
