"""Digests (image-spec descriptor.md): parsing, validation and hashing."""

from __future__ import annotations

import hashlib
import re

from vocab.errors import InvalidArgument

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX_LEN = {"sha256": 64, "sha512": 128}


def validate(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256/sha512 digest, else InvalidArgument."""
    if not _DIGEST_RE.match(digest):
        raise InvalidArgument(f"invalid digest {digest!r}")
    algorithm, encoded = digest.split(":", 1)
    want = _HEX_LEN.get(algorithm)
    if want is None:
        raise InvalidArgument(f"unsupported digest algorithm {algorithm!r}")
    if len(encoded) != want or not re.fullmatch(r"[0-9a-f]+", encoded):
        raise InvalidArgument(f"invalid {algorithm} digest {digest!r}")
    return digest


def hasher(digest: str) -> hashlib._Hash:
    """A fresh hash object for the algorithm of ``digest``."""
    return hashlib.new(validate(digest).split(":", 1)[0])


def of_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """Digest of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def chain_id(diff_ids: list[str]) -> str:
    """OCI ChainID of a layer stack (image-spec config.md "Layer ChainID")."""
    if not diff_ids:
        raise InvalidArgument("an image needs at least one layer")
    chain = diff_ids[0]
    for diff_id in diff_ids[1:]:
        chain = of_bytes(f"{chain} {diff_id}".encode())
    return chain
