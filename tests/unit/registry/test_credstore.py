"""The docker-style credentials file: mode 0600, other keys kept, Hub aliases."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from services.registry import credstore
from services.registry.auth import load_credentials
from vocab.errors import InvalidArgument, NotFound


def test_store_reads_back_keeps_other_keys_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"credsStore": "x", "auths": {"http://r:5000/v2/": {}}}))
    credstore.store(path, "r:5000", "me", "p:w")
    credstore.store(path, "docker.io", "hub", "pw")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["credsStore"] == "x"
    assert set(data["auths"]) == {"r:5000", credstore.DOCKER_HUB_KEY}
    assert base64.b64decode(data["auths"]["r:5000"]["auth"]) == b"me:p:w"
    assert load_credentials(str(path)) == {"r:5000": ("me", "p:w"), "docker.io": ("hub", "pw")}
    credstore.remove(path, "r:5000")
    assert load_credentials(str(path)) == {"docker.io": ("hub", "pw")}
    with pytest.raises(NotFound, match="Not logged in to r:5000"):
        credstore.remove(path, "r:5000")


@pytest.mark.parametrize(("server", "host"), [
    ("", "docker.io"), ("index.docker.io", "docker.io"),
    ("https://index.docker.io/v1/", "docker.io"), ("http://r:5000/", "r:5000"),
])
def test_server_key(server: str, host: str) -> None:
    assert credstore.server_key(server) == host


def test_bad_server_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        credstore.server_key("a b")
    bad = tmp_path / "config.json"
    bad.write_text("[1]")
    with pytest.raises(InvalidArgument, match="not a JSON object"):
        credstore.store(bad, "r:5000", "u", "p")
