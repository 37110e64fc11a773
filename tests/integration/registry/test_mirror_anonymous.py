"""The mirror serves only what upstream serves to anyone (issue 19, item 6): the engine's
stored credentials open a private repository to the engine's own pulls, never to callers
of the mirror, also once those pulls have filled the shared caches."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from muelle.registry.v1 import registry_pb2, registry_pb2_grpc
from muelle.types.v1 import types_pb2

from services.core.client import connect
from tests.integration.registry.conftest import mirror_service
from tests.support.registry import LocalRegistry, free_port, htpasswd_line

USER, PASSWORD = "engine", "engine-secret"
REPO = "private/app"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    """The real registry with Basic auth on everything: nothing is public."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(htpasswd_line(USER, PASSWORD))
    extra = f"auth:\n  htpasswd:\n    realm: private\n    path: {htpasswd}\n"
    with LocalRegistry(tmp_path / "upstream", extra_config=extra) as reg:
        yield reg


def _push(reg: LocalRegistry) -> tuple[str, str]:
    """A private OCI image tagged ``1``; returns (manifest digest, layer digest)."""
    auth = (USER, PASSWORD)
    descs = []
    for data in (b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers",'
                 b'"diff_ids":[]}}', b"private layer bytes"):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = httpx.post(f"{reg.url}/v2/{REPO}/blobs/uploads/", auth=auth
                              ).headers["Location"]
        resp = httpx.put(f"{location}{'&' if '?' in location else '?'}digest={digest}",
                         content=data, auth=auth)
        assert resp.status_code == 201, resp.text
        descs.append({"digest": digest, "size": len(data)})
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **descs[0]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **descs[1]}]})
    resp = httpx.put(f"{reg.url}/v2/{REPO}/manifests/1", content=manifest, auth=auth,
                     headers={"Content-Type": OCI_MANIFEST})
    assert resp.status_code == 201, resp.text
    return resp.headers["Docker-Content-Digest"], str(descs[1]["digest"])


def test_private_content_is_not_served_to_anonymous_callers(
        private_registry: LocalRegistry, tmp_path: Path) -> None:
    manifest_digest, layer_digest = _push(private_registry)
    auth_file = tmp_path / "config.json"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth_file.write_text(json.dumps({"auths": {private_registry.host: {"auth": token}}}))
    grpc_address = f"tcp://127.0.0.1:{free_port()}"
    with mirror_service(tmp_path / "svc", private_registry.host,
                        f'auth_file = "{auth_file}"\n', address=grpc_address) as mirror:
        conn = http.client.HTTPConnection(mirror, timeout=30)

        def ask(method: str, path: str) -> tuple[int, bytes]:
            conn.request(method, path, headers={"Accept": OCI_MANIFEST})
            resp = conn.getresponse()
            return resp.status, resp.read()

        def refused() -> None:
            for path in (f"/v2/{REPO}/manifests/1", f"/v2/{REPO}/manifests/{manifest_digest}",
                         f"/v2/{REPO}/blobs/{layer_digest}"):
                assert ask("HEAD", path) == (403, b""), path
                status, body = ask("GET", path)
                assert status == 403, (path, body)
                assert json.loads(body)["errors"][0]["code"] == "DENIED"
                assert b"anonymous" in body

        try:
            refused()
            # The engine's own pull through the same service uses its credentials and
            # fills the shared caches...
            stub = connect(grpc_address, registry_pb2_grpc.RegistryStub, "registry")
            res = stub.Resolve(registry_pb2.ResolveRequest(
                reference=f"{private_registry.host}/{REPO}:1"))
            assert res.manifest.descriptor.digest == manifest_digest
            layer = b"".join(c.data for c in stub.FetchBlob(registry_pb2.FetchBlobRequest(
                repository=res.repository,
                descriptor=types_pb2.Descriptor(digest=layer_digest, size=19))))
            assert layer == b"private layer bytes"
            # ...which the mirror still does not hand out.
            refused()
        finally:
            conn.close()
