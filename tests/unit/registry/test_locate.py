"""Resolver.locate_blob: where an image store on this host may download a blob itself,
and what never leaves the registry service (passwords, certs.d material)."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import httpx
import pytest

from services.core.config import Config, RegistryConfig
from services.registry.descriptors import Descriptor
from services.registry.ranges import FAST, PROBE
from services.registry.resolver import Resolver
from vocab.errors import InvalidArgument

from .fakeupstream import HOST, OCI_LAYER, Upstream, sha

LAYER = b"layer bytes" * 100


def resolver(up: Upstream, tmp_path: Path, **registry: object) -> Resolver:
    cfg = Config(root=tmp_path, registry=RegistryConfig(**registry))  # type: ignore[arg-type]
    return Resolver(cfg, transport=up.transport(), sleep=lambda _: None)


def layer(up: Upstream, data: bytes = LAYER) -> Descriptor:
    return Descriptor(OCI_LAYER, up.add_blob(data), len(data))


def test_an_open_registry_gives_its_url_and_no_headers(tmp_path: Path) -> None:
    up = Upstream()
    desc = layer(up)
    found = resolver(up, tmp_path).locate_blob(f"{HOST}/demo/app", desc)
    assert found.where is not None
    assert found.where.url == f"http://{HOST}/v2/demo/app/blobs/{desc.digest}"
    assert found.where.headers == {}
    assert (found.probe_bytes, found.min_bytes_per_second) == (PROBE, FAST)
    assert [r.method for r in up.requests] == ["HEAD"]


def test_a_token_registry_gives_the_pull_token(tmp_path: Path) -> None:
    up = Upstream(token="t0k")
    desc = layer(up)
    found = resolver(up, tmp_path).locate_blob(f"{HOST}/demo/app", desc)
    assert found.where is not None
    assert found.where.headers == {"Authorization": "Bearer t0k"}
    token_req = next(r for r in up.requests if r.url.host == "auth.test")
    assert token_req.url.params["scope"] == "repository:demo/app:pull"


def test_a_password_never_leaves(tmp_path: Path) -> None:
    auth = tmp_path / "registry" / "config.json"
    auth.parent.mkdir()
    auth.write_text(json.dumps({"auths": {HOST: {
        "auth": base64.b64encode(b"me:secret").decode()}}}))
    up = Upstream()
    desc = layer(up)
    want = "Basic " + base64.b64encode(b"me:secret").decode()

    def basic(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != want:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return up.serve(request)

    up.overrides[f"/v2/demo/app/blobs/{desc.digest}"] = basic
    found = resolver(up, tmp_path, auth_file=str(auth)).locate_blob(f"{HOST}/demo/app", desc)
    assert found.where is None
    assert "password" in found.reason


def test_a_certs_d_host_stays_with_the_service(tmp_path: Path) -> None:
    certs = tmp_path / "certs.d"
    (certs / HOST).mkdir(parents=True)
    up = Upstream()
    desc = layer(up)
    found = resolver(up, tmp_path, certs_dir=str(certs)).locate_blob(f"{HOST}/demo/app", desc)
    assert found.where is None and "certs.d" in found.reason
    assert up.requests == []


def test_a_pull_mirror_is_where_the_bytes_come_from(tmp_path: Path) -> None:
    up = Upstream()
    desc = layer(up)
    found = resolver(up, tmp_path, mirrors={"registry.k8s.io": HOST}).locate_blob(
        "registry.k8s.io/pause", desc)
    assert found.where is not None
    assert found.where.url == f"http://{HOST}/v2/pause/blobs/{desc.digest}"


def test_a_missing_blob_or_another_length_is_left_to_fetch_blob(tmp_path: Path) -> None:
    up = Upstream()
    missing = Descriptor(OCI_LAYER, sha(b"nowhere"), 7)
    found = resolver(up, tmp_path).locate_blob(f"{HOST}/demo/app", missing)
    assert found.where is None and "not found" in found.reason.lower()
    desc = layer(up)
    longer = dataclasses.replace(desc, size=desc.size + 1)
    found = resolver(up, tmp_path).locate_blob(f"{HOST}/demo/app", longer)
    assert found.where is None and f"{desc.size} bytes" in found.reason


def test_no_probe_when_the_service_would_not_split_it_either(tmp_path: Path) -> None:
    up = Upstream()
    found = resolver(up, tmp_path, parallel_ranges=1).locate_blob(f"{HOST}/demo/app",
                                                                  layer(up))
    assert found.where is not None
    assert (found.probe_bytes, found.min_bytes_per_second) == (0, 0)


@pytest.mark.parametrize(("repo", "digest"), [
    (f"{HOST}/demo/app:1", sha(b"x")), (f"{HOST}/demo/app", "sha256:nothex")])
def test_bad_arguments(tmp_path: Path, repo: str, digest: str) -> None:
    with pytest.raises(InvalidArgument):
        resolver(Upstream(), tmp_path).locate_blob(repo, Descriptor(OCI_LAYER, digest, 1))


def test_certs_d_of_the_api_host_or_a_redirect_target_stays_too(tmp_path: Path) -> None:
    certs = tmp_path / "certs.d"
    (certs / "registry-1.docker.io").mkdir(parents=True)  # docker.io's API host
    up = Upstream()
    desc = layer(up)
    found = resolver(up, tmp_path, certs_dir=str(certs)).locate_blob(
        "docker.io/library/app", desc)
    assert found.where is None and "registry-1.docker.io" in found.reason

    (certs / "storage.test").mkdir()
    up.overrides[f"/v2/demo/app/blobs/{desc.digest}"] = lambda r: httpx.Response(
        307, headers={"Location": f"https://storage.test/b/{desc.digest}"})
    up.overrides[f"/b/{desc.digest}"] = lambda r: httpx.Response(
        200, headers={"Content-Length": str(desc.size)})
    found = resolver(up, tmp_path, certs_dir=str(certs)).locate_blob(f"{HOST}/demo/app", desc)
    assert found.where is None and "storage.test" in found.reason


def test_a_busy_registry_is_not_retried_here(tmp_path: Path) -> None:
    # FetchBlob waits for it (3 retries with backoff); a location would only add to that.
    up = Upstream()
    desc = layer(up)
    up.overrides[f"/v2/demo/app/blobs/{desc.digest}"] = lambda r: httpx.Response(503)
    found = resolver(up, tmp_path).locate_blob(f"{HOST}/demo/app", desc)
    assert found.where is None and "503" in found.reason
    assert len(up.requests) == 1
