"""The registry service as a read-only pull-through mirror: skopeo pulls through it, the
second pull takes no blob from upstream; writes are refused."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.core.launcher import healthy
from tests.support.docker import Dockerd, DockerUnavailable
from tests.support.fake_registry import FakeRegistry
from tests.support.images import push_layout
from tests.support.registry import LocalRegistry, free_port

REPO_ROOT = Path(__file__).resolve().parents[3]


@contextlib.contextmanager
def mirror_service(tmp_path: Path, upstream: str) -> Iterator[str]:
    """A registry service mirroring ``upstream``; yields the mirror's host:port."""
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "muelle.toml"
    config.write_text(
        f'root = "{tmp_path}"\nrun = "{tmp_path}"\n[registry]\n'
        f'cache_max_bytes = 100000000\nmirror_listen = "127.0.0.1:{port}"\n'
        f'mirror_upstream = "{upstream}"\n')
    address = f"unix://{tmp_path}/registry.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUELLE_")}
    with open(tmp_path / "registry.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.registry.main", "--config", str(config),
             "--address", address, "--root", str(tmp_path), "--run", str(tmp_path)],
            cwd=REPO_ROOT, stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + 30
        while not healthy(address, timeout=0.5):
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "registry.log").read_text()[-2000:]
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


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
        try:
            dockerd = Dockerd(extra_args=(f"--registry-mirror=http://{address}",)).start()
        except DockerUnavailable as exc:
            pytest.skip(f"no Docker Engine here: {exc}")
        try:
            dockerd.docker("pull", "busybox:mirrortest")
            out = dockerd.docker("image", "inspect", "-f", "{{index .RepoDigests 0}}",
                                 "busybox:mirrortest").stdout.strip()
            want = json.loads((busybox_layout / "index.json").read_text())
            assert out.endswith(want["manifests"][0]["digest"])
        finally:
            dockerd.close()
