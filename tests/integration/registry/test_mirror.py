"""The registry service as a read-only pull-through mirror: skopeo pulls through it, the
second pull takes no blob from upstream; writes are refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.registry.conftest import mirror_service
from tests.support.docker import started
from tests.support.fake_registry import FakeRegistry
from tests.support.images import push_layout
from tests.support.registry import LocalRegistry

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def mirror(tmp_path: Path, busybox_layout: Path) -> Iterator[tuple[str, FakeRegistry]]:
    with FakeRegistry(busybox_layout) as upstream, \
            mirror_service(tmp_path, upstream.host) as address:
        yield address, upstream


def _skopeo_copy(src: str, dest: Path) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{src}",
                    f"oci:{dest}:1"], check=True, capture_output=True, timeout=120)


def test_skopeo_pulls_through_the_mirror(mirror: tuple[str, FakeRegistry], tmp_path: Path,
                                         busybox_layout: Path) -> None:
    address, upstream = mirror
    assert httpx.get(f"http://{address}/v2/").status_code == 200
    _skopeo_copy(f"{address}/demo/bb:1", tmp_path / "first")
    blob_gets = [r for r in upstream.requests if r.startswith("GET") and "/blobs/" in r]
    assert blob_gets
    _skopeo_copy(f"{address}/demo/bb:1", tmp_path / "second")  # the cache serves the blobs
    assert [r for r in upstream.requests if r.startswith("GET") and "/blobs/" in r] \
        == blob_gets
    want = json.loads((busybox_layout / "index.json").read_text())["manifests"][0]["digest"]
    for copy in ("first", "second"):
        index = json.loads((tmp_path / copy / "index.json").read_text())
        assert index["manifests"][0]["digest"] == want
    head = httpx.head(f"http://{address}/v2/demo/bb/manifests/1")
    assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == want
    missing = httpx.get(f"http://{address}/v2/demo/bb/manifests/sha256:{'0' * 64}")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == \
        "MANIFEST_UNKNOWN"
    assert httpx.post(f"http://{address}/v2/demo/bb/blobs/uploads/").status_code == 405


def test_docker_pulls_hub_images_through_the_mirror(tmp_path: Path, busybox_layout: Path,
                                                   registry: LocalRegistry) -> None:
    """dockerd with --registry-mirror asks the mirror for docker.io images: here the
    mirror's upstream is the local registry, so `docker pull busybox:1` never needs the
    internet (Docker trusts a 127.0.0.0/8 mirror over plain HTTP)."""
    push_layout(busybox_layout, f"{registry.host}/library/busybox:mirrortest", tag="1")
    with mirror_service(tmp_path / "svc", registry.host) as address:
        dockerd = started(extra_args=(f"--registry-mirror=http://{address}",))
        try:
            dockerd.docker("pull", "busybox:mirrortest")
            out = dockerd.docker("image", "inspect", "-f", "{{index .RepoDigests 0}}",
                                 "busybox:mirrortest").stdout.strip()
            want = json.loads((busybox_layout / "index.json").read_text())
            assert out.endswith(want["manifests"][0]["digest"])
        finally:
            dockerd.close()
