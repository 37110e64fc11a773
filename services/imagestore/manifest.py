"""Parsing and checking of manifests and image configs: untrusted input, so every field
used is validated and every failure is a typed error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from muelle.types.v1 import types_pb2

from services.imagestore.registry_client import Content
from vocab import digest as digestmod
from vocab.errors import DataLoss, InvalidArgument

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+prettyjws",
           "application/vnd.docker.distribution.manifest.v1+json")


@dataclass
class Manifest:
    config: types_pb2.Descriptor
    layers: list[types_pb2.Descriptor]


@dataclass
class ImageConfigDoc:
    raw: bytes
    doc: dict[str, Any]
    diff_ids: list[str]
    platform: dict[str, str] = field(default_factory=dict)
    created: str = ""


def verify(content: Content) -> None:
    """The bytes must hash to the digest and have the size they claim."""
    digestmod.validate(content.digest)
    algorithm = content.digest.split(":", 1)[0]
    actual = digestmod.of_bytes(content.data, algorithm)
    if actual != content.digest or len(content.data) != content.size:
        raise DataLoss(f"manifest {content.digest}: content does not match "
                       f"(digest {actual}, {len(content.data)} bytes)")


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return doc


def descriptor(obj: Any, what: str) -> types_pb2.Descriptor:
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what}: descriptor is not an object")
    digest, size, media = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
    if not isinstance(digest, str):
        raise InvalidArgument(f"{what}: descriptor has no digest")
    digestmod.validate(digest)
    # (sizes travel as int64: a bigger one would fail to encode, as an internal error)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 1 << 63:
        raise InvalidArgument(f"{what}: descriptor {digest} has an invalid size")
    if not isinstance(media, str):
        raise InvalidArgument(f"{what}: descriptor {digest} has an invalid mediaType")
    urls = obj.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise InvalidArgument(f"{what}: descriptor {digest} has invalid urls")
    return types_pb2.Descriptor(media_type=media, digest=digest, size=size, urls=urls)


def parse_manifest(content: Content) -> Manifest:
    doc = _json(content.data, f"manifest {content.digest}")
    media = doc.get("mediaType") or content.media_type
    if media in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise InvalidArgument("Docker schema1 manifests are not supported; "
                              "push the image again with a current client")
    if media in (OCI_INDEX, DOCKER_LIST) or "manifests" in doc:
        raise InvalidArgument(f"{content.digest} is an index, not an image manifest")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(f"manifest {content.digest}: unsupported schemaVersion "
                              f"{doc.get('schemaVersion')!r}")
    config = descriptor(doc.get("config"), "manifest config")
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list) or not layers_doc:
        raise InvalidArgument(f"manifest {content.digest} has no layers")
    layers = [descriptor(d, f"manifest layer {i}") for i, d in enumerate(layers_doc)]
    return Manifest(config, layers)


def parse_config(raw: bytes, layer_count: int) -> ImageConfigDoc:
    doc = _json(raw, "image config")
    rootfs = doc.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidArgument("image config has no rootfs.diff_ids")
    for d in diff_ids:
        digestmod.validate(d)
    if len(diff_ids) != layer_count:
        raise InvalidArgument(f"image config lists {len(diff_ids)} diff IDs but the manifest "
                              f"has {layer_count} layers")
    platform = {k: str(doc.get(k, "")) for k in ("os", "architecture", "variant")
                if doc.get(k)}
    created = doc.get("created")
    return ImageConfigDoc(raw, doc, diff_ids, platform,
                          created if isinstance(created, str) else "")
