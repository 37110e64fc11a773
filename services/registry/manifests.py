"""Manifest and index media types, the Accept header, and validation of served bytes.

Everything here works on the exact bytes a registry returned: digests are computed over
them, never over re-serialised JSON (DS "Pushing Manifests": registries store bytes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from services.registry.descriptors import Descriptor
from vocab import digest as digestmod
from vocab.errors import DataLoss, InvalidArgument

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

# containerd's list (SPECS §3.3): without the list types some registries down-convert.
ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX, "*/*"])

# Content types that say nothing about the manifest kind; the body decides.
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})

MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class ManifestContent:
    """A manifest or index as served: its verified descriptor, bytes and parsed parts."""

    descriptor: Descriptor
    content: bytes
    # Index entries (for an index) or config + layers (for a manifest).
    children: tuple[Descriptor, ...]
    config: Descriptor | None = None

    @property
    def is_index(self) -> bool:
        return self.descriptor.media_type in INDEX_TYPES


def base_type(content_type: str | None) -> str:
    """``Content-Type`` without parameters, lowercased."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def verify_digest(content: bytes, want: str, what: str) -> str:
    """Check ``content`` hashes to ``want``; returns it. DataLoss on mismatch."""
    algorithm = digestmod.validate(want).split(":", 1)[0]
    got = f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"
    if got != want:
        raise DataLoss(f"digest mismatch for {want}: got {got} ({what})")
    return want


def check_size(size: int, what: str) -> None:
    if size > MAX_MANIFEST_SIZE:
        raise InvalidArgument(
            f"{what}: manifest is {size} bytes, over the {MAX_MANIFEST_SIZE} byte limit")


def parse(
    content: bytes,
    content_type: str | None,
    what: str,
    expected: Descriptor | None = None,
    header_digest: str | None = None,
) -> ManifestContent:
    """Validate ``content`` served for ``what`` (a reference, for messages).

    ``expected`` is the descriptor we asked for (a digest reference or an index entry):
    the bytes must hash to its digest and match its size, and then its media type wins
    over a conflicting Content-Type (IS media-types.md "Media Type Conflicts").
    ``header_digest`` is Docker-Content-Digest, checked when present.
    """
    check_size(len(content), what)
    ctype = base_type(content_type)
    if ctype in SCHEMA1_TYPES:
        raise InvalidArgument(f"{what}: Docker schema1 manifests ({ctype}) are not "
                              "supported; push the image again with a current client")
    if expected is not None:
        verify_digest(content, expected.digest, what)
        if expected.size and expected.size != len(content):
            raise DataLoss(f"size mismatch for {expected.digest}: got {len(content)} bytes, "
                           f"want {expected.size} ({what})")
    if header_digest:
        try:
            digestmod.validate(header_digest)
        except InvalidArgument:
            raise DataLoss(f"{what}: registry sent an invalid Docker-Content-Digest "
                           f"{header_digest!r}") from None
        verify_digest(content, header_digest, f"{what}, Docker-Content-Digest")
    body = _decode(content, what)
    if body.get("schemaVersion") == 1:
        raise InvalidArgument(f"{what}: Docker schema1 manifests are not supported; "
                              "push the image again with a current client")
    media_type = _media_type(body, ctype, expected, what)
    if body.get("schemaVersion") != 2:
        raise DataLoss(f"{what}: unsupported schemaVersion {body.get('schemaVersion')!r}")
    if expected is not None:
        digest = expected.digest
    elif header_digest and header_digest.startswith("sha256:"):
        digest = header_digest
    else:
        digest = digestmod.of_bytes(content)
    descriptor = Descriptor(media_type, digest, len(content))
    if media_type in INDEX_TYPES:
        entries = body.get("manifests")
        if not isinstance(entries, list):
            raise DataLoss(f"{what}: index has no manifests list")
        children = tuple(Descriptor.from_json(e, f"{what} manifests[{i}]")
                         for i, e in enumerate(entries))
        return ManifestContent(descriptor, content, children)
    config = Descriptor.from_json(body.get("config"), f"{what} config")
    layers = body.get("layers")
    if not isinstance(layers, list):
        raise DataLoss(f"{what}: manifest has no layers list")
    children = tuple(Descriptor.from_json(layer, f"{what} layers[{i}]")
                     for i, layer in enumerate(layers))
    return ManifestContent(descriptor, content, children, config)


def _decode(content: bytes, what: str) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        snippet = content[:40].decode("utf-8", "replace")
        raise DataLoss(f"{what}: registry returned a manifest that is not JSON: "
                       f"{snippet!r}") from None
    if not isinstance(body, dict):
        raise DataLoss(f"{what}: registry returned a manifest that is not a JSON object")
    return body


def _media_type(body: dict[str, Any], ctype: str, expected: Descriptor | None,
                what: str) -> str:
    """The kind of manifest, from Content-Type, the body's mediaType and what we expected."""
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise DataLoss(f"{what}: mediaType is not a string")
    known = INDEX_TYPES | MANIFEST_TYPES
    if expected is not None and expected.media_type in known:
        # The digest matched, so the descriptor's type is authoritative.
        authority = expected.media_type
    elif ctype in known:
        authority = ctype
    elif ctype in _GENERIC_TYPES:
        authority = declared or _infer(body, what)
    else:
        raise InvalidArgument(f"{what}: unsupported manifest media type {ctype!r}")
    if declared and declared != authority:
        raise DataLoss(f"{what}: media type mismatch: served as {authority} but the "
                       f"manifest says {declared}")
    if authority not in known:
        raise InvalidArgument(f"{what}: unsupported manifest media type {authority!r}")
    return authority


def _infer(body: dict[str, Any], what: str) -> str:
    # OCI allows omitting mediaType; the shape tells the kind.
    if "manifests" in body:
        return OCI_INDEX
    if "config" in body and "layers" in body:
        return OCI_MANIFEST
    raise DataLoss(f"{what}: cannot tell the kind of manifest (no mediaType, "
                   "no manifests, no config/layers)")
