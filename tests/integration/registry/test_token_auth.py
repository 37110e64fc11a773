"""The real distribution registry in `auth: token` mode: JWTs from a token server the
test runs (Basic-authenticated, RS256 signed by a key the test makes)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.core.config import RegistryConfig
from services.registry.descriptors import Descriptor
from services.registry.http import RegistryHTTP
from services.registry.push import Pusher
from services.registry.resolver import Resolver
from tests.support.images import build_busybox_layout
from tests.support.registry import LocalRegistry
from tests.support.tls import make_ca
from tests.support.token_server import TokenServer
from vocab.errors import Unauthenticated

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry,
                                                                     TokenServer]]:
    d = tmp_path_factory.mktemp("token-auth")
    cert, key = make_ca(d, "signer")
    with TokenServer(cert, key, {"alice": "s3cret"}) as tokens, \
            LocalRegistry(d / "registry", extra_config=tokens.registry_config()) as reg:
        layout = d / "bb"
        build_busybox_layout(layout, tag="1")
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                        "--dest-creds", "alice:s3cret", f"oci:{layout}:1",
                        f"docker://{reg.host}/demo/busybox:1"], check=True,
                       capture_output=True)
        yield reg, tokens


def _get_manifest(http: RegistryHTTP, host: str) -> int:
    resp = http.request("GET", host, "demo/busybox", "/v2/demo/busybox/manifests/1",
                        kind="manifest", what="demo/busybox:1", headers={"Accept": MANIFEST})
    resp.close()
    return resp.status_code


def test_pull_with_a_token_cached_per_scope(auth: tuple[LocalRegistry, TokenServer],
                                            tmp_path: Path) -> None:
    reg, tokens = auth
    http = RegistryHTTP(RegistryConfig(auth_file=str(tmp_path / "none.json")))
    http.set_credentials(reg.host, ("alice", "s3cret"))
    try:
        before = len(tokens.issued)
        assert _get_manifest(http, reg.host) == 200
        assert _get_manifest(http, reg.host) == 200  # the cached token, no new one
        assert tokens.issued[before:] == ["repository:demo/busybox:pull"]
        http.ping(reg.host, ("alice", "s3cret"))  # login's check
    finally:
        http.close()


def test_wrong_credentials_are_unauthorized(auth: tuple[LocalRegistry, TokenServer],
                                            tmp_path: Path) -> None:
    reg, tokens = auth
    http = RegistryHTTP(RegistryConfig(auth_file=str(tmp_path / "none.json")))
    http.set_credentials(reg.host, ("alice", "wrong"))
    try:
        with pytest.raises(Unauthenticated, match="unauthorized"):
            _get_manifest(http, reg.host)
        with pytest.raises(Unauthenticated):
            http.ping(reg.host, ("mallory", "x"))
    finally:
        http.close()


def test_push_with_credentials_then_pull_back(auth: tuple[LocalRegistry, TokenServer],
                                              tmp_path: Path) -> None:
    reg, tokens = auth
    http = RegistryHTTP(RegistryConfig(auth_file=str(tmp_path / "none.json")))
    http.set_credentials(reg.host, ("alice", "s3cret"))
    pusher = Pusher(http, chunk_size=64 * 1024)
    repo = f"{reg.host}/demo/pushed"
    layer, config = os.urandom(200_000), b'{"architecture":"amd64","os":"linux"}'
    try:
        before = len(tokens.issued)
        for data in (layer, config):
            assert pusher.push_blob(repo, _desc(data), [data])[:2] == (_desc(data).digest,
                                                                       len(data))
        # The busybox layer is known in demo/busybox: mounted, with a token for both.
        bb = json.loads(_manifest_bytes(http, reg.host))["layers"][0]["digest"]
        assert pusher.mount_blob(repo, bb, "demo/busybox")
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _desc(config).digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": _desc(layer).digest, "size": len(layer)}]}).encode()
        digest = pusher.push_manifest(f"{repo}:1", MANIFEST, manifest)
        # Three tokens for ten registry requests: push (both blobs and the manifest reuse
        # it), pull of demo/busybox, and the mount's two scopes sent as two parameters.
        push, pull = "repository:demo/pushed:pull,push", "repository:demo/busybox:pull"
        # (The registry's challenge lists a scope's actions, and a mount's two scopes, in
        # no fixed order.)
        issued = [_sorted_actions(s) for s in tokens.issued[before:]]
        assert issued[:2] == [push, pull] and sorted(issued[2:]) == sorted([push, pull])
    finally:
        http.close()

    resolver = Resolver()
    resolver.http.set_credentials(reg.host, ("alice", "s3cret"))
    try:
        res = resolver.resolve(f"{repo}:1")
        assert res.manifest.descriptor.digest == digest and res.manifest.content == manifest
        got = b"".join(resolver.fetch_blob(repo, _desc(layer)))
        assert got == layer
    finally:
        resolver.close()


def test_push_with_wrong_credentials_is_unauthorized(auth: tuple[LocalRegistry, TokenServer],
                                                     tmp_path: Path) -> None:
    reg, _ = auth
    http = RegistryHTTP(RegistryConfig(auth_file=str(tmp_path / "none.json")))
    http.set_credentials(reg.host, ("alice", "wrong"))
    data = b"never stored"
    try:
        with pytest.raises(Unauthenticated, match="unauthorized"):
            Pusher(http).push_blob(f"{reg.host}/demo/pushed", _desc(data), [data])
    finally:
        http.close()


def _sorted_actions(scope: str) -> str:
    kind, name, actions = scope.split(":")
    return f"{kind}:{name}:{','.join(sorted(actions.split(',')))}"


def _desc(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream",
                      "sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def _manifest_bytes(http: RegistryHTTP, host: str) -> bytes:
    resp = http.request("GET", host, "demo/busybox", "/v2/demo/busybox/manifests/1",
                        kind="manifest", what="demo/busybox:1", headers={"Accept": MANIFEST})
    try:
        return resp.read()
    finally:
        resp.close()
