"""The registry service under whole engines: a pull cut by kill -9 of the registry service
resumes where the image store's partial download stopped (counted in upstream bytes), and
two engines sharing one registry service (TCP, blob cache on) fetch each blob upstream once.

Upstream is tests/support/fake_registry.py, which counts the body bytes it writes per
request and can hold a blob after N bytes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import launcher
from tests.integration.registry.conftest import registry_service_with
from tests.support.engine import CLI, Engine
from tests.support.fake_registry import FakeRegistry
from tests.support.images import Entry, Layer, build_layout, busybox_layer
from tests.support.registry import free_port

pytestmark = pytest.mark.root

MIB = 1 << 20
HOLD_AT = 3 * MIB  # upstream bytes of the big layer served before the stream is held
REF_PATH = "demo/big:1"


@pytest.fixture(scope="module")
def big_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = tmp_path_factory.mktemp("big") / "layout"
    # Incompressible, so the layer blob is as big as its data.
    big = Layer([Entry("data", "dir"), Entry("data/big", data=os.urandom(6 * MIB))])
    build_layout(layout, [busybox_layer(), big], tag="1")
    return layout


def _biggest_blob(layout: Path) -> tuple[str, int]:
    path = max((layout / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    return "sha256:" + path.name, path.stat().st_size


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _kill9_registry(engine: Engine) -> None:
    pid = launcher.running_pid(engine.cfg, "registry")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # our child (launcher started it): reap it, no zombie left


@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "cache"])
def test_pull_resumes_after_the_registry_service_is_killed(big_layout: Path,
                                                           cached: bool) -> None:
    big, size = _biggest_blob(big_layout)
    extra = "[registry]\ncache_max_bytes = 100000000\n" if cached else ""
    with FakeRegistry(big_layout) as upstream, Engine(extra_config=extra) as engine:
        upstream.hold = (big, HOLD_AT)
        ref = f"{upstream.host}/{REF_PATH}"
        first = subprocess.Popen([CLI, "pull", ref], env=engine.env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert upstream.holding.wait(60), engine.logs()
            partial = engine.root / "imagestore/ingest" / (big.replace(":", "-") + ".partial")
            # The registry service keeps up to one 1 MiB chunk back until the blob is
            # verified: the image store has what it passed on.
            _wait_for(lambda: partial.exists() and partial.stat().st_size >= HOLD_AT - MIB,
                      "the partial download never grew")
            # With the cache on, the registry service keeps its own partial copy of what
            # it passed on (written before it is sent).
            mine = engine.root / "registry/blobs" / (".partial-" + big.replace(":", "-"))
            if cached:
                _wait_for(lambda: mine.exists() and mine.stat().st_size >= HOLD_AT - MIB,
                          "the registry service's partial never grew")
            _kill9_registry(engine)
            _, err = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert first.returncode != 0 and err.strip().count("\n") == 0, err
        kept = partial.stat().st_size
        assert kept >= HOLD_AT - MIB
        cache_kept = mine.stat().st_size if cached else 0
        assert not cached or cache_kept >= kept

        upstream.hold = None
        upstream.release.set()  # the old request ends (its client is gone)
        _wait_for(lambda: any(d == big and s == 0 for d, s, _ in upstream.blob_bytes),
                  "the held request did not end")
        before = len(upstream.blob_bytes)
        launcher.start(engine.cfg, str(engine.config_file), engine.services)  # registry again
        engine.cli("pull", ref)

        again = [(s, n) for d, s, n in upstream.blob_bytes[before:] if d == big]
        # Only the rest left upstream: one Range request from where the partial stopped
        # (the registry service's own, further along, when it has one).
        start = cache_kept if cached else kept
        assert again == [(start, size - start)], (again, kept, size)
        if cached:
            blob = engine.root / "registry/blobs" / big.replace(":", "-")
            assert blob.stat().st_size == size and not mine.exists()
        assert engine.cli("images", "-q").stdout.strip()


@pytest.fixture
def shared_registry(tmp_path: Path) -> Iterator[str]:
    """A registry service on TCP with its blob cache on, run apart from any engine."""
    with registry_service_with(tmp_path / "shared", "cache_max_bytes = 100000000\n",
                               f"tcp://127.0.0.1:{free_port()}") as address:
        yield address


def test_second_engine_pulls_from_the_shared_cache(shared_registry: str,
                                                   big_layout: Path) -> None:
    extra = f'[addresses]\nregistry = "{shared_registry}"\n'
    services = tuple(s for s in launcher.ORDER if s != "registry")
    with FakeRegistry(big_layout) as upstream:
        ref = f"{upstream.host}/{REF_PATH}"
        with Engine(extra_config=extra, services=services) as first:
            first.cli("pull", ref)
            image_id = first.cli("images", "-q", "--no-trunc").stdout.strip()
        cold = list(upstream.blob_bytes)
        assert sum(n for _, _, n in cold) == sum(
            p.stat().st_size for p in (big_layout / "blobs/sha256").iterdir()
            if f"sha256:{p.name}" in {d for d, _, _ in cold})
        with Engine(extra_config=extra, services=services) as second:
            second.cli("pull", ref)
            assert second.cli("images", "-q", "--no-trunc").stdout.strip() == image_id
            second.cli("run", "--rm", "--network", "none", ref, "test", "-s", "/data/big")
        # Manifests still come from upstream (a tag is resolved each time); blobs not.
        assert upstream.blob_bytes == cold
