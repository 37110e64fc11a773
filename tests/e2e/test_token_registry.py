"""login, push and pull through the CLI against the real registry in `auth: token` mode
(JWTs from a test token server); what was pushed is read back with skopeo."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_push import pushed_digest, skopeo_copy_digest
from tests.support.engine import Engine
from tests.support.images import Entry, build_layout, busybox_layer, push_layout
from tests.support.registry import LocalRegistry
from tests.support.tls import make_ca
from tests.support.token_server import TokenServer

pytestmark = pytest.mark.root

USER, PASSWORD = "carol", "t0ken-pw"


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[LocalRegistry, TokenServer]]:
    cert, key = make_ca(tmp_path, "signer")
    with TokenServer(cert, key, {USER: PASSWORD}) as tokens, \
            LocalRegistry(tmp_path / "registry", extra_config=tokens.registry_config()) as reg:
        yield reg, tokens


def test_login_push_pull_with_tokens(engine: Engine, image: str, tmp_path: Path,
                                     token_registry: tuple[LocalRegistry, TokenServer]
                                     ) -> None:
    reg, tokens = token_registry
    target = f"{reg.host}/team/busybox:1"
    engine.cli("tag", image, target)
    denied = engine.cli("push", target, check=False)  # anonymous: the token server says no
    assert denied.returncode != 0 and "unauthorized" in denied.stderr.lower(), denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1, denied.stderr

    wrong = engine.cli("login", "-u", USER, "--password-stdin", reg.host, check=False,
                       input=b"nope\n")
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr.lower(), wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr

    engine.cli("login", "-u", USER, "--password-stdin", reg.host,
               input=PASSWORD.encode() + b"\n")
    digest = pushed_digest(engine.cli("push", target).stdout, "1")
    assert {"repository:team/busybox:pull,push",
            "repository:team/busybox:push,pull"} & set(tokens.issued), tokens.issued
    creds = ("--src-creds", f"{USER}:{PASSWORD}")
    assert skopeo_copy_digest(target, tmp_path / "oci", *creds) == digest

    engine.cli("rmi", target)
    assert f"Digest: {digest}" in engine.cli("pull", target).stdout
    engine.cli("logout", reg.host)
    engine.cli("rmi", target)
    refused = engine.cli("pull", target, check=False)
    assert refused.returncode != 0 and "unauthorized" in refused.stderr.lower(), \
        refused.stderr


def test_a_large_layer_comes_straight_from_the_token_registry(
        engine: Engine, tmp_path: Path,
        token_registry: tuple[LocalRegistry, TokenServer]) -> None:
    """The registry service hands the image store the pull token for the repository
    (registry.v1 LocateBlob) and the image store downloads the large layer itself; after
    logout the registry refuses, and the pull says so as before."""
    reg, tokens = token_registry
    layout = tmp_path / "big"
    data = random.Random("token-registry").randbytes(6 << 20)
    build_layout(layout, [busybox_layer([Entry("big", data=data)])], tag="1")
    big = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    target = f"{reg.host}/team/big:1"
    push_layout(layout, target, tag="1", creds=(USER, PASSWORD))
    engine.cli("login", "-u", USER, "--password-stdin", reg.host,
               input=PASSWORD.encode() + b"\n")
    log = engine.run / "imagestore.log"
    mark = len(log.read_text().splitlines())
    engine.cli("pull", target)
    events = [json.loads(line) for line in log.read_text().splitlines()[mark:]
              if line.startswith("{")]
    direct = [e for e in events if e.get("digest") == f"sha256:{big.name}"]
    assert [e["event"] for e in direct] == ["blob downloaded from the registry"], events
    assert "repository:team/big:pull" in tokens.issued, tokens.issued
    engine.cli("logout", reg.host)
    engine.cli("rmi", target)
    refused = engine.cli("pull", target, check=False)
    assert refused.returncode != 0 and "unauthorized" in refused.stderr.lower(), \
        refused.stderr
