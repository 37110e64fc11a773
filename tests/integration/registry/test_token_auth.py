"""The real distribution registry in `auth: token` mode: JWTs from a token server the
test runs (Basic-authenticated, RS256 signed by a key the test makes)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.core.config import RegistryConfig
from services.core.errors import Unauthenticated
from services.registry.http import RegistryHTTP
from tests.support.images import build_busybox_layout
from tests.support.registry import LocalRegistry
from tests.support.tls import make_ca
from tests.support.token_server import TokenServer

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
