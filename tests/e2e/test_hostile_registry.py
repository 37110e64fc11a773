"""A real engine against a hostile registry (tests/support/hostile_registry.py), case by case:
each pull fails with a clear error (a typed status and a message naming what went wrong),
stores nothing half-way (`system check` is clean, no image is recorded, the ingest dir
holds at most the resumable partial of the blob that was cut), and the engine then pulls
the same image from the same server, behaving, as if nothing had happened.

Limits are configured small (a 1 s throughput window, a 1 GiB blob cap) so that every
case takes seconds; nothing here asserts a time, waits are bounded waits for events.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clients.sdk.client import Client
from tests.support.engine import CLI, Engine
from tests.support.hostile_registry import TIB, HostileRegistry
from tests.support.images import Entry, build_layout, busybox_layer
from vocab.errors import (
    DataLoss,
    InvalidArgument,
    MuelleError,
    ResourceExhausted,
    Unavailable,
)

pytestmark = pytest.mark.root

GIB = 1 << 30
REF_PATH = "hostile/image:1"
LIMITS = f"""
[registry]
blob_min_bytes = 4096
blob_window_seconds = 1
[imagestore]
max_blob_bytes = {GIB}
max_pull_bytes = {GIB + GIB // 2}
min_free_bytes = {64 << 20}
"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Layers of their own (not the busybox test image's), two of them for the total cap.
    # The first is large enough (> registry_client.SPARE_HASH_FROM) to be downloaded
    # straight from the registry (imagestore/direct.py), which hands every hostile answer
    # to the registry service: each case below must end as it did through it alone.
    path = tmp_path_factory.mktemp("hostile") / "layout"
    big = random.Random("hostile").randbytes(6 << 20)
    build_layout(path, [busybox_layer([Entry("hostile", data=b"one"),
                                       Entry("big", data=big)]),
                        busybox_layer([Entry("hostile", data=b"two")])], tag="1")
    return path


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with Engine(extra_config=LIMITS) as eng:
        yield eng


@pytest.fixture
def hostile(layout: Path) -> Iterator[HostileRegistry]:
    with HostileRegistry(layout) as server:
        yield server


def _ref(server: HostileRegistry) -> str:
    return f"{server.host}/{REF_PATH}"


def _pull_error(engine: Engine, ref: str) -> MuelleError:
    """The typed error the engine's API answers a pull of ``ref`` with."""
    client = Client(host=engine.host)
    with pytest.raises(MuelleError) as caught:
        for _ in client.pull(ref):
            pass
    return caught.value


def _ingest(engine: Engine) -> dict[str, int]:
    d = engine.root / "imagestore" / "ingest"
    return {p.name: p.stat().st_size for p in d.iterdir()} if d.is_dir() else {}


def _partial_name(digest: str) -> str:
    return digest.replace(":", "-") + ".partial"


def _store_is_clean(engine: Engine, server: HostileRegistry, prefixes: bool = True) -> None:
    """No image recorded, `system check` clean, and no partial download but of the
    image's layers, each (with ``prefixes``) the start of the layer's true bytes: what a
    resume may continue. (A layer cancelled mid-way because its sibling failed keeps
    what it had, as any interrupted download does.)"""
    assert _REPO not in engine.cli("images").stdout.replace(server.host, "HOST")
    check = engine.cli("system", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    layers = {_partial_name(d): d for d in server.layer_digests()}
    for name in _ingest(engine):
        assert name in layers, f"unexpected partial {name}"
        if prefixes:
            data = (engine.root / "imagestore" / "ingest" / name).read_bytes()
            true = server._blob(layers[name]) or b""
            assert data == true[:len(data)], f"{name} is not a prefix of its layer"


_REPO = "HOST/hostile/image"


def _engine_still_pulls(engine: Engine, server: HostileRegistry) -> None:
    """The same image from the same server, now behaving: pulled and then removed (so
    the next case downloads its blobs again)."""
    server.manifest_mode, server.blob_mode = "ok", "ok"
    server.declared_size = server.declared_config_size = None
    out = engine.cli("pull", _ref(server)).stdout
    assert "Downloaded newer image" in out, out
    assert engine.cli("system", "check").returncode == 0
    engine.cli("rmi", _ref(server))
    assert _ingest(engine) == {}


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# -- declared sizes --------------------------------------------------------------------


def test_blob_declared_over_the_cap_is_refused_before_download(
        engine: Engine, hostile: HostileRegistry) -> None:
    hostile.declared_size = TIB
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, ResourceExhausted), err
    assert f"is declared as {TIB} bytes" in str(err) and "max_blob_bytes" in str(err)
    assert all(not hostile.blob_requests(d) for d in hostile.layer_digests())
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


def test_pull_declared_over_the_total_cap_is_refused_before_download(
        engine: Engine, hostile: HostileRegistry) -> None:
    hostile.declared_size = GIB  # each layer at the blob cap, both over the pull's
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, ResourceExhausted), err
    assert "max_pull_bytes" in str(err)
    assert all(not hostile.blob_requests(d) for d in hostile.layer_digests())
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


def test_config_declared_huge_is_refused_before_download(
        engine: Engine, hostile: HostileRegistry) -> None:
    hostile.declared_config_size = GIB // 2  # under the blob cap, but read into memory
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, ResourceExhausted), err
    assert f"is declared as {GIB // 2} bytes" in str(err) and "config" in str(err)
    assert not any("/blobs/" in path for _, path, _ in hostile.hostile_requests)
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


# -- blobs -----------------------------------------------------------------------------


def test_interrupted_pull_stops_on_every_hop(engine: Engine, hostile: HostileRegistry) -> None:
    """An endless layer declared as 512 MiB; the CLI is interrupted mid-download. The
    registry's connection is closed (the cancel went CLI -> gateway -> image store ->
    registry service -> HTTP), the partial stops growing and is kept for a resume: the
    next pull asks the registry for the rest from exactly its size."""
    hostile.declared_size = 512 << 20
    hostile.blob_mode = "endless"
    # Slow enough that the image store sends no progress message (one per quarter
    # layer) within the waits below: a cancel must not wait for one.
    hostile.endless_rate = 1 << 20
    cli = subprocess.Popen([CLI, "pull", _ref(hostile)], env=engine.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any(size > (1 << 20) for size in _ingest(engine).values()),
                  "the endless layer is being written")
        cli.send_signal(signal.SIGINT)
        _, stderr = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 130 and "Traceback" not in stderr, stderr
    assert hostile.disconnected.wait(30), "the registry kept streaming after the CLI left"
    assert set(hostile.cut) <= set(hostile.layer_digests())

    # The next pull takes each blob's ingest lock, so the cancelled ingests have ended by
    # then; it asks the registry for the rest from exactly the size of the partial each
    # has kept (the registry only answers 500 now, so they stay as they are).
    hostile.blob_mode = "500"
    before = {d: len(hostile.blob_requests(d)) for d in hostile.layer_digests()}
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, Unavailable) and "HTTP 500" in str(err), err
    resumed = 0
    for digest, seen in before.items():
        kept = _ingest(engine).get(_partial_name(digest), 0)
        assert kept < hostile.declared_size
        asked = hostile.blob_requests(digest)[seen:]
        if asked and kept:
            assert all(r.startswith(f"bytes={kept}-") for r in asked), (kept, asked)
            resumed += 1
    assert resumed, "no partial download was resumed"
    _store_is_clean(engine, hostile, prefixes=False)  # zeros: a resume fails on the digest
    _engine_still_pulls(engine, hostile)  # and starts over from 0


def test_lying_content_length_is_refused_before_reading(
        engine: Engine, hostile: HostileRegistry) -> None:
    hostile.blob_mode = "lying-length"
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, DataLoss), err
    assert f"announces {TIB} bytes" in str(err)
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


def test_more_than_declared_is_cut_off(engine: Engine, hostile: HostileRegistry) -> None:
    hostile.blob_mode = "overflow"
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, DataLoss), err
    assert "registry sent more than" in str(err)
    assert hostile.disconnected.wait(30)
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


def test_slowloris_fails_on_the_minimum_pace(engine: Engine, hostile: HostileRegistry) -> None:
    hostile.blob_mode = "slowloris"
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, Unavailable), err
    assert f"registry {hostile.host} is too slow sending blob sha256:" in str(err)
    assert "registry.blob_min_bytes" in str(err)
    # What came is kept for a resume, as after any broken download.
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


def test_wrong_digest_is_data_loss(engine: Engine, hostile: HostileRegistry) -> None:
    hostile.blob_mode = "wrong-digest"
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, DataLoss) and "digest mismatch" in str(err), err
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


def test_blob_redirect_loop(engine: Engine, hostile: HostileRegistry) -> None:
    hostile.blob_mode = "redirect-loop"
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, Unavailable) and "too many redirects" in str(err), err
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


def test_blob_500s(engine: Engine, hostile: HostileRegistry) -> None:
    hostile.blob_mode = "500"
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, Unavailable) and "HTTP 500" in str(err), err
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


# -- manifests -------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "error", "text"), [
    ("garbage", DataLoss, "not JSON"),
    ("huge", InvalidArgument, "byte limit"),
    ("redirect-loop", Unavailable, "too many redirects"),
    ("500", Unavailable, "HTTP 500"),
])
def test_hostile_manifest(engine: Engine, hostile: HostileRegistry, mode: str,
                          error: type[MuelleError], text: str) -> None:
    hostile.manifest_mode = mode
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, error) and text in str(err), err
    assert not any("/blobs/" in path for _, path, _ in hostile.hostile_requests)
    proc = engine.cli("pull", _ref(hostile), check=False)  # one line, no traceback
    assert proc.returncode == 1 and text in proc.stderr and "Traceback" not in proc.stderr
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)


def test_engine_runs_containers_after_it_all(engine: Engine, busybox_ref: str) -> None:
    engine.cli("pull", busybox_ref)
    assert engine.cli("run", "--rm", busybox_ref, "echo", "fine").stdout == "fine\n"


def test_store_reserve_refuses_a_blob_before_download(layout: Path) -> None:
    """min_free_bytes larger than the disk: no blob starts (statvfs before the first
    byte), the manifest is read but no blob is asked for."""
    reserve = os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize
    with Engine(extra_config=f"[imagestore]\nmin_free_bytes = {reserve}\n") as eng, \
            HostileRegistry(layout) as server:
        err = _pull_error(eng, _ref(server))
        assert isinstance(err, ResourceExhausted), err
        assert "must stay free (imagestore.min_free_bytes)" in str(err)
        assert not any("/blobs/" in path for _, path, _ in server.hostile_requests)
        _store_is_clean(eng, server)


# -- large layers: straight from the registry, anything unusual through the relay ------


def _imagestore_log(engine: Engine) -> list[dict[str, object]]:
    lines = (engine.run / "imagestore.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_large_layer_comes_straight_from_the_registry(
        engine: Engine, hostile: HostileRegistry) -> None:
    """The registry service located the large layer (a HEAD) and the image store got
    its bytes itself; a hostile answer to that GET went to the registry service, whose
    error the pull reports (test_blob_500s and the others check the words)."""
    big = max(hostile.layer_digests(), key=lambda d: len(hostile._blob(d) or b""))
    mark = len(_imagestore_log(engine))
    _engine_still_pulls(engine, hostile)
    asked = [(m, r) for m, p, r in hostile.hostile_requests if p.endswith(f"/blobs/{big}")]
    assert asked == [("HEAD", ""), ("GET", "")], asked
    direct = [e for e in _imagestore_log(engine)[mark:] if e.get("digest") == big]
    assert [e["event"] for e in direct] == ["blob downloaded from the registry"], direct

    hostile.blob_mode = "500"
    mark, seen = len(_imagestore_log(engine)), len(hostile.hostile_requests)
    err = _pull_error(engine, _ref(hostile))
    assert isinstance(err, Unavailable) and "HTTP 500" in str(err), err
    handed = [e for e in _imagestore_log(engine)[mark:] if e.get("digest") == big
              and e["event"] == "direct download handed to the registry service"]
    assert len(handed) == 1 and "500" in str(handed[0]["reason"]), handed
    gets = [r for m, p, r in hostile.hostile_requests[seen:]
            if m == "GET" and p.endswith(f"/blobs/{big}")]
    assert len(gets) > 1  # the image store's, then the registry service's (and retries)
    _store_is_clean(engine, hostile)
    _engine_still_pulls(engine, hostile)
