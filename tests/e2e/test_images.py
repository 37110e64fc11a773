"""Pulling, listing, inspecting and removing images through the CLI, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.fake_registry import FakeRegistry
from tests.support.images import Entry, Layer, build_layout
from tests.support.registry import free_port

pytestmark = pytest.mark.root


def test_pull_shows_progress_and_stores_the_image(fresh_engine: Engine, busybox_ref: str) -> None:
    out = fresh_engine.cli("pull", busybox_ref).stdout
    assert "Digest: sha256:" in out
    assert "Pull complete" in out or "Download complete" in out
    images = fresh_engine.cli("images").stdout
    assert "demo/busybox" in images and " 1 " in images
    # A second pull is a no-op that says so.
    again = fresh_engine.cli("pull", busybox_ref).stdout
    assert "up to date" in again.lower() or "Already exists" in again


def test_inspect_and_rmi(fresh_engine: Engine, busybox_ref: str) -> None:
    fresh_engine.cli("pull", busybox_ref)
    detail = json.loads(fresh_engine.cli("inspect", busybox_ref).stdout)
    assert isinstance(detail, list) and len(detail) == 1
    text = json.dumps(detail)
    assert "sha256:" in text and "busybox" in text
    fresh_engine.cli("rmi", busybox_ref)
    assert "demo/busybox" not in fresh_engine.cli("images").stdout
    gone = fresh_engine.cli("inspect", busybox_ref, check=False)
    assert gone.returncode != 0 and "Traceback" not in gone.stderr


def _fails_cleanly(engine: Engine, *args: str, expect: str) -> str:
    before = engine.cli("images", "-q").stdout
    proc = engine.cli(*args, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    assert expect.lower() in proc.stderr.lower(), proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
    assert engine.cli("images", "-q").stdout == before, "a failed pull stored something"
    return proc.stderr


def test_unknown_image_is_not_found(engine: Engine, registry_host: str) -> None:
    _fails_cleanly(engine, "pull", f"{registry_host}/demo/nothing:here", expect="not found")


def test_unreachable_registry(engine: Engine) -> None:
    _fails_cleanly(engine, "pull", f"127.0.0.1:{free_port()}/demo/busybox:1",
                   expect="127.0.0.1")


def test_malformed_reference(engine: Engine) -> None:
    _fails_cleanly(engine, "pull", "Not/Valid::ref", expect="invalid reference")


def test_run_of_an_image_not_pulled(engine: Engine) -> None:
    proc = engine.cli("run", "--rm", "--pull=never", "127.0.0.1:1/never/pulled:1", "true",
                      check=False)
    assert proc.returncode == 125 and "no such image" in proc.stderr.lower(), proc.stderr
    # by default docker's run tries to pull it; nothing listens on port 1
    proc = engine.cli("run", "--rm", "127.0.0.1:1/never/pulled:1", "true", check=False)
    assert proc.returncode == 125
    assert proc.stderr.startswith("Unable to find image '127.0.0.1:1/never/pulled:1' locally\n")
    assert "cannot reach registry 127.0.0.1:1" in proc.stderr


def test_digest_mismatch_from_upstream_stores_nothing(engine: Engine,
                                                      busybox_layout: Path) -> None:
    with FakeRegistry(busybox_layout, corrupt_blobs=True) as fake:
        err = _fails_cleanly(engine, "pull", f"{fake.host}/demo/busybox:1", expect="digest")
    assert "sha256:" in err



def test_a_large_corrupt_layer_is_refused_by_the_image_store(engine: Engine,
                                                             tmp_path: Path) -> None:
    # Past registry_client.SPARE_HASH_FROM the registry service passes the bytes on
    # unhashed (FetchBlob caller_verifies): the image store's own check refuses them,
    # commits no blob and keeps no partial of wrong bytes.
    layout = tmp_path / "big"
    data = random.Random("corrupt-layer").randbytes(6 << 20)  # incompressible: > 4 MiB
    build_layout(layout, [Layer([Entry("data", data=data)])], tag="1")
    with FakeRegistry(layout, corrupt_blobs=True) as fake:
        err = _fails_cleanly(engine, "pull", f"{fake.host}/demo/busybox:1",
                             expect="digest mismatch")
    store = engine.root / "imagestore"
    layer = json.loads(_manifest_of(layout))["layers"][0]["digest"]
    assert layer in err
    assert not (store / "blobs" / "sha256" / layer.split(":")[1]).exists()
    assert not (store / "ingest" / f"{layer.replace(':', '-')}.partial").exists()


def _manifest_of(layout: Path) -> bytes:
    index = json.loads((layout / "index.json").read_text())
    return (layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
            ).read_bytes()

def test_garbage_manifest_is_refused(engine: Engine, busybox_layout: Path) -> None:
    with FakeRegistry(busybox_layout, garbage_manifest=True) as fake:
        _fails_cleanly(engine, "pull", f"{fake.host}/demo/busybox:1", expect="manifest")


@pytest.fixture
def registry_host(registry) -> str:  # type: ignore[no-untyped-def]
    return str(registry.host)
