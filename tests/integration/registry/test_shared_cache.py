"""One registry service with its blob cache on, listening on TCP, shared by several
clients (image stores): a blob asked for at once by all of them, and again later, leaves
the upstream registry once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from muelle.registry.v1 import registry_pb2, registry_pb2_grpc
from muelle.types.v1 import types_pb2

from services.core.client import connect
from tests.integration.registry.conftest import registry_service_with
from tests.support.fake_registry import FakeRegistry
from tests.support.registry import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cached_service(tmp_path: Path) -> Iterator[str]:
    address = f"tcp://127.0.0.1:{free_port()}"
    with registry_service_with(tmp_path, "cache_max_bytes = 100000000\n", address) as addr:
        yield addr


def test_clients_share_one_upstream_fetch(cached_service: str, busybox_layout: Path) -> None:
    with FakeRegistry(busybox_layout) as upstream:
        clients = [connect(cached_service, registry_pb2_grpc.RegistryStub, "registry")
                   for _ in range(4)]
        res = clients[0].Resolve(registry_pb2.ResolveRequest(
            reference=f"{upstream.host}/demo/bb:1"))
        layer = json.loads(res.manifest.content)["layers"][0]
        desc = types_pb2.Descriptor(digest=layer["digest"], size=layer["size"])

        def fetch(stub: registry_pb2_grpc.RegistryStub) -> bytes:
            request = registry_pb2.FetchBlobRequest(repository=res.repository,
                                                    descriptor=desc)
            return b"".join(c.data for c in stub.FetchBlob(request))

        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(fetch, clients))
        got.append(fetch(clients[0]))  # later, from the cache
        want = (busybox_layout / "blobs" / "sha256" / desc.digest.split(":")[1]).read_bytes()
        assert got == [want] * 5
        blob_gets = [r for r in upstream.requests if r.startswith("GET")
                     and desc.digest in r]
        assert len(blob_gets) == 1, upstream.requests
