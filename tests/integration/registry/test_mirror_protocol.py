"""The mirror endpoint speaks the distribution spec the way the real registry does (issue 23):
clean 404s for what upstream lacks, spec error codes, no body on HEAD, the client's Accept
passed through, and a HEAD that does not download the blob.

Upstream is Debian's docker-registry behind a byte-counting proxy. Every request goes over
one reused ``http.client`` connection, so a response framed wrong (a body after a HEAD, a
404 written into a 200's headers or chunks) breaks the next response and shows.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.registry.conftest import mirror_service
from tests.support.counting_proxy import CountingProxy
from tests.support.registry import LocalRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
REPO = "mirrorproto/app"
MISSING = "sha256:" + hashlib.sha256(b"hello world").hexdigest()  # the suite's dummy digest
BIG = 4 << 20  # a blob whose download a HEAD must not cause


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def code(self) -> str:
        return str(json.loads(self.body)["errors"][0]["code"])


class Raw:
    """One keep-alive HTTP/1.1 connection; every reply is read in full before the next."""

    def __init__(self, host: str) -> None:
        self.conn = http.client.HTTPConnection(host, timeout=30)

    def __call__(self, method: str, path: str, headers: dict[str, str] | None = None,
                 body: bytes | None = None) -> Reply:
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        assert not resp.will_close, f"{method} {path}: the server closed the connection"
        return Reply(resp.status, resp.headers, data)

    def close(self) -> None:
        self.conn.close()


@dataclass
class Seeded:
    upstream: str      # host:port of the registry itself
    mirror: str        # host:port of the mirror
    proxy: CountingProxy
    config: bytes
    config_digest: str
    big_digest: str
    oci_digest: str    # the OCI manifest tagged "oci"


def _push_blob(url: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = httpx.post(f"{url}/v2/{REPO}/blobs/uploads/").headers["Location"]
    sep = "&" if "?" in location else "?"
    resp = httpx.put(f"{location}{sep}digest={digest}", content=data, timeout=30)
    assert resp.status_code == 201, resp.text
    return {"digest": digest, "size": len(data)}


def _put_manifest(url: str, tag: str, media_type: str, body: dict[str, object]
                  ) -> dict[str, object]:
    data = json.dumps(body).encode()
    resp = httpx.put(f"{url}/v2/{REPO}/manifests/{tag}", content=data,
                     headers={"Content-Type": media_type})
    assert resp.status_code == 201, resp.text
    return {"mediaType": media_type, "digest": resp.headers["Docker-Content-Digest"],
            "size": len(data)}


@pytest.fixture(scope="module")
def seeded(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Seeded]:
    """In the real registry: an OCI manifest, a Docker manifest, an OCI index and a Docker
    manifest list, each under its own tag, and a 4 MiB blob; a mirror of it (cache on)."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    cfg = _push_blob(registry.url, config)
    layer = _push_blob(registry.url, b"mirror protocol layer")
    big = _push_blob(registry.url, os.urandom(BIG))
    platform = {"os": "linux", "architecture": "amd64"}
    oci = _put_manifest(registry.url, "oci", OCI_MANIFEST, {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]})
    docker = _put_manifest(registry.url, "docker", DOCKER_MANIFEST, {
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **cfg},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    **layer}]})
    _put_manifest(registry.url, "ociindex", OCI_INDEX, {
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{**oci, "platform": platform}]})
    _put_manifest(registry.url, "dockerlist", DOCKER_LIST, {
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{**docker, "platform": platform}]})
    with CountingProxy(registry.host) as proxy, \
            mirror_service(tmp_path_factory.mktemp("mirror-proto"), proxy.host) as mirror:
        yield Seeded(registry.host, mirror, proxy, config, str(cfg["digest"]),
                     str(big["digest"]), str(oci["digest"]))


@pytest.fixture
def raw(seeded: Seeded) -> Iterator[Raw]:
    client = Raw(seeded.mirror)
    yield client
    client.close()


def test_a_blob_upstream_lacks_is_a_clean_404(seeded: Seeded, raw: Raw) -> None:
    head = raw("HEAD", f"/v2/{REPO}/blobs/{MISSING}")
    assert (head.status, head.body) == (404, b"")
    get = raw("GET", f"/v2/{REPO}/blobs/{MISSING}")
    assert get.status == 404 and get.code() == "BLOB_UNKNOWN"
    assert raw("GET", f"/v2/nosuchrepo/x/blobs/{MISSING}").status == 404
    # The same connection still carries a whole, framed blob.
    ok = raw("GET", f"/v2/{REPO}/blobs/{seeded.config_digest}")
    assert ok.status == 200 and ok.body == seeded.config
    assert ok.headers["Content-Length"] == str(len(seeded.config))
    assert ok.headers["Docker-Content-Digest"] == seeded.config_digest
    again = raw("GET", f"/v2/{REPO}/blobs/{seeded.config_digest}")  # now from the cache
    assert again.status == 200 and again.body == seeded.config


def test_manifest_errors_carry_spec_codes(seeded: Seeded, raw: Raw) -> None:
    for ref in (".INVALID_MANIFEST_NAME", "nosuchtag", f"sha256:{'0' * 64}"):
        head = raw("HEAD", f"/v2/{REPO}/manifests/{ref}")
        assert (head.status, head.body) == (404, b""), ref
        get = raw("GET", f"/v2/{REPO}/manifests/{ref}", {"Accept": OCI_MANIFEST})
        assert get.status == 404 and get.code() == "MANIFEST_UNKNOWN", (ref, get.body)
    # A GET with a body (the conformance suite sends one): read and dropped, not taken
    # for the next request.
    bad = raw("GET", f"/v2/{REPO}/manifests/sha256:totallywrong",
              {"Content-Type": OCI_MANIFEST}, b"blablabla")
    assert bad.status == 400 and bad.code() == "DIGEST_INVALID"
    assert raw("GET", f"/v2/{REPO}/blobs/sha256:abc").code() == "DIGEST_INVALID"
    name = raw("GET", "/v2/Upper/Case/manifests/oci")
    assert name.status == 400 and name.code() == "NAME_INVALID"
    assert raw("HEAD", "/v2/Upper/Case/manifests/oci").body == b""
    refused = raw("PUT", f"/v2/{REPO}/manifests/x", {"Content-Type": OCI_MANIFEST}, b"{}")
    assert refused.status == 405 and refused.code() == "UNSUPPORTED"
    ok = raw("GET", f"/v2/{REPO}/manifests/oci", {"Accept": OCI_MANIFEST})
    assert ok.status == 200 and ok.headers["Docker-Content-Digest"] == seeded.oci_digest


ACCEPTS = [None, OCI_MANIFEST, DOCKER_MANIFEST, f"{OCI_MANIFEST}, {OCI_INDEX}",
           f"{DOCKER_MANIFEST}, {DOCKER_LIST}, {OCI_MANIFEST}, {OCI_INDEX}", "*/*"]


@pytest.mark.parametrize("tag", ["oci", "docker", "ociindex", "dockerlist"])
def test_the_clients_accept_gets_what_upstream_serves_for_it(seeded: Seeded, raw: Raw,
                                                             tag: str) -> None:
    """For each Accept the mirror answers what the registry answers: the same status, and
    for a 200 the same media type, digest and bytes (never a conversion of its own)."""
    direct = Raw(seeded.upstream)
    try:
        for accept in ACCEPTS:
            headers = {"Accept": accept} if accept else {}
            for method in ("GET", "HEAD", "GET"):  # the second GET may come from the cache
                want = direct(method, f"/v2/{REPO}/manifests/{tag}", headers)
                got = raw(method, f"/v2/{REPO}/manifests/{tag}", headers)
                what = (tag, accept, method)
                assert got.status == want.status, what
                if want.status != 200:
                    continue
                assert got.body == want.body, what
                assert got.headers["Content-Type"] == want.headers["Content-Type"], what
                digest = want.headers["Docker-Content-Digest"]
                assert got.headers["Docker-Content-Digest"] == digest, what
                assert got.headers["Content-Length"] == want.headers["Content-Length"], what
                by_digest = raw(method, f"/v2/{REPO}/manifests/{digest}", headers)
                assert by_digest.status == 200 and by_digest.body == want.body, what
    finally:
        direct.close()


def test_head_of_an_uncached_blob_does_not_download_it(seeded: Seeded, raw: Raw) -> None:
    before = seeded.proxy.downstream_bytes
    head = raw("HEAD", f"/v2/{REPO}/blobs/{seeded.big_digest}")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == str(BIG)
    assert head.headers["Docker-Content-Digest"] == seeded.big_digest
    assert seeded.proxy.downstream_bytes - before < 64 * 1024
    get = raw("GET", f"/v2/{REPO}/blobs/{seeded.big_digest}")
    assert get.status == 200 and len(get.body) == BIG
    assert "sha256:" + hashlib.sha256(get.body).hexdigest() == seeded.big_digest
    assert raw("HEAD", f"/v2/{REPO}/blobs/{seeded.big_digest}").headers["Content-Length"] \
        == str(BIG)


def test_v2_root_and_unknown_routes(seeded: Seeded, raw: Raw) -> None:
    root = raw("GET", "/v2/")
    assert root.status == 200 and json.loads(root.body) == {}
    assert raw("HEAD", "/v2/").body == b""
    unknown = raw("GET", f"/v2/{REPO}/tags/list")
    assert unknown.status == 404 and unknown.code() == "UNSUPPORTED"
    assert raw("HEAD", f"/v2/{REPO}/tags/list").body == b""
