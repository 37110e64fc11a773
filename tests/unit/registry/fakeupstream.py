"""An in-memory distribution registry behind httpx.MockTransport, for unit tests.

    up = Upstream(); up.add_blob(b"..."); up.add_manifest("demo/app", "1", body, OCI_MANIFEST)
    resolver = Resolver(transport=up.transport(), sleep=lambda _: None)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

HOST = "127.0.0.1:5000"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True).encode()


def desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


def image(layers: list[bytes], config: bytes = b'{"architecture":"amd64","os":"linux"}',
          media_type: str = OCI_MANIFEST) -> bytes:
    return dumps({"schemaVersion": 2, "mediaType": media_type,
                  "config": desc(OCI_CONFIG, config),
                  "layers": [desc(OCI_LAYER, layer) for layer in layers]})


class FailingStream(httpx.SyncByteStream):
    """Sends ``data`` then raises ReadError, like a connection that drops mid-body."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpx.ReadError("connection reset by peer")


@dataclass
class Upstream:
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    # When set, every /v2/ request needs "Bearer <token>" (anonymous token flow).
    token: str = ""
    token_requests: int = 0
    # Per-path overrides: a callable answering the request instead of the registry.
    overrides: dict[str, Callable[[httpx.Request], httpx.Response]] = field(
        default_factory=dict)
    honour_range: bool = True

    def add_blob(self, data: bytes) -> str:
        self.blobs[sha(data)] = data
        return sha(data)

    def add_manifest(self, path: str, ref: str, body: bytes, media_type: str) -> str:
        self.manifests[(path, ref)] = (body, media_type)
        self.manifests[(path, sha(body))] = (body, media_type)
        return sha(body)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path in self.overrides:
            return self.overrides[path](request)
        return self.serve(request)

    def serve(self, request: httpx.Request) -> httpx.Response:
        """What the registry answers, overrides aside (for an override to fall back to)."""
        path = request.url.path
        if request.url.host == "auth.test":
            self.token_requests += 1
            return httpx.Response(200, json={"token": self.token, "expires_in": 300})
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            repo = path.split("/")[2:4]
            return httpx.Response(401, headers={"WWW-Authenticate": (
                'Bearer realm="https://auth.test/token",service="registry.test",'
                f'scope="repository:{"/".join(repo)}:pull"')},
                json={"errors": [{"code": "UNAUTHORIZED", "message": "authenticate"}]})
        parts = path.strip("/").split("/")
        if parts == ["v2"]:
            return httpx.Response(200, json={})
        if len(parts) >= 4 and parts[-2] == "manifests":
            found = self.manifests.get(("/".join(parts[1:-2]), parts[-1]))
            if found is None:
                return _error(404, "MANIFEST_UNKNOWN")
            body, media_type = found
            return httpx.Response(200, content=body, headers={
                "Content-Type": media_type, "Docker-Content-Digest": sha(body)})
        if len(parts) >= 4 and parts[-2] == "blobs" and parts[-1] in self.blobs:
            data = self.blobs[parts[-1]]
            rng = request.headers.get("Range", "")
            if rng and self.honour_range:
                first, _, last = rng.removeprefix("bytes=").partition("-")
                start, end = int(first), int(last) + 1 if last else len(data)
                if start >= len(data):
                    return httpx.Response(416, headers={"Content-Range": f"bytes */{len(data)}"})
                end = min(end, len(data))
                return httpx.Response(206, content=data[start:end], headers={
                    "Content-Range": f"bytes {start}-{end - 1}/{len(data)}"})
            return httpx.Response(200, content=data)
        return _error(404, "BLOB_UNKNOWN")


def _error(status: int, code: str, message: str = "") -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": code, "message": message}]})
