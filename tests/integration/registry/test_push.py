"""The push core against the real distribution registry: chunked and monolithic uploads,
cross-repo mounts, a mismatching blob never committed, manifests byte for byte."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from services.registry.descriptors import Descriptor
from services.registry.http import RegistryHTTP
from services.registry.push import Pusher
from tests.support.registry import LocalRegistry
from vocab.errors import DataLoss

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def blob(data: bytes, media: str = OCI_LAYER) -> Descriptor:
    return Descriptor(media, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))


@pytest.fixture
def pusher() -> Pusher:
    return Pusher(RegistryHTTP(), chunk_size=64 * 1024)


def pieces(data: bytes, size: int = 10_000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_chunked_and_monolithic_uploads(pusher: Pusher, registry: LocalRegistry) -> None:
    repo = f"{registry.host}/push/chunks"
    big, small = os.urandom(300_000), b"small blob"
    assert pusher.stat_blob(repo, blob(big).digest) is None
    digest, size, requests = pusher.push_blob(repo, blob(big), pieces(big))
    assert (digest, size) == (blob(big).digest, len(big)) and requests == 5  # 4 PATCH + PUT
    assert pusher.push_blob(repo, blob(small), [small])[2] == 1
    assert pusher.stat_blob(repo, blob(big).digest) == len(big)
    got = httpx.get(f"{registry.url}/v2/push/chunks/blobs/{digest}", timeout=10)
    assert got.content == big


def test_mount_from_another_repository(pusher: Pusher, registry: LocalRegistry) -> None:
    data = os.urandom(1000)
    pusher.push_blob(f"{registry.host}/push/src", blob(data), [data])
    dest = f"{registry.host}/push/dest"
    assert pusher.mount_blob(dest, blob(data).digest, "push/src")
    assert pusher.stat_blob(dest, blob(data).digest) == len(data)
    other = os.urandom(1000)  # unknown in push/src: the registry opens an upload instead
    assert not pusher.mount_blob(dest, blob(other).digest, "push/src")


def test_mismatching_bytes_are_not_committed(pusher: Pusher, registry: LocalRegistry) -> None:
    repo = f"{registry.host}/push/bad"
    data = os.urandom(200_000)
    desc = blob(data)
    with pytest.raises(DataLoss, match="does not match"):
        pusher.push_blob(repo, desc, pieces(data[:-1] + b"x"))
    assert pusher.stat_blob(repo, desc.digest) is None


def test_manifest_pushed_byte_for_byte(pusher: Pusher, registry: LocalRegistry) -> None:
    repo = f"{registry.host}/push/image"
    layer, config = os.urandom(500), b'{"architecture":"amd64","os":"linux"}'
    for data, desc in ((layer, blob(layer)), (config, blob(config, OCI_CONFIG))):
        pusher.push_blob(repo, desc, [data])
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, "digest": blob(config).digest,
                      "size": len(config)},
           "layers": [{"mediaType": OCI_LAYER, "digest": blob(layer).digest,
                       "size": len(layer)}]}
    raw = json.dumps(doc, indent=3).encode()  # unusual spacing survives
    digest = pusher.push_manifest(f"{repo}:v1", OCI_MANIFEST, raw)
    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    got = httpx.get(f"{registry.url}/v2/push/image/manifests/v1",
                    headers={"Accept": OCI_MANIFEST}, timeout=10)
    assert got.content == raw and got.headers["Docker-Content-Digest"] == digest
