"""The layers download while the image's config is fetched (pull.py), but nothing is
committed before the config is verified: a config refused (its digest, its content) or a
pull ended before it leaves no blob, no partial download, no snapshot, no image."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from muelle.types.v1 import types_pb2

from services.imagestore.store import ImageStore
from tests.support.images import Entry, Layer, build_layout
from tests.unit.imagestore.fakes import LayoutRegistry, change_config, layout_manifest
from vocab.errors import Cancelled, DataLoss, InvalidArgument

REF = "127.0.0.1:5000/demo/busybox:1"
BIG = random.Random("config").randbytes(300_000)  # incompressible


def _build(path: Path) -> Path:
    build_layout(path, [Layer([Entry("etc", "dir"), Entry("etc/big", data=BIG)]),
                        Layer([Entry("srv", "dir"), Entry("srv/small", data=b"s" * 100)])],
                 tag="1")
    return path


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("layout") / "two")


def _config_digest(layout: Path) -> str:
    return str(layout_manifest(layout)["config"]["digest"])


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10  # a bound, not a timing: the state is what is asserted
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition(), what


def _downloaded(store: ImageStore, layout: Path) -> Callable[[], bool]:
    """True once every layer's bytes are all here: in its partial file (verified, held
    back) or, if anything let it through, committed."""
    def check() -> bool:
        for layer in layout_manifest(layout)["layers"]:
            partial = store.content.partial_path(layer["digest"])
            if store.content.has(layer["digest"]):
                continue
            if not partial.exists() or partial.stat().st_size != layer["size"]:
                return False
        return True

    return check


def _nothing_stored(store: ImageStore) -> None:
    assert store.list_images() == []
    assert store.content.ids() == []
    assert list(store.content.ingests.iterdir()) == []
    assert list(store.snapshots.snapshots.iterdir()) == []


def _pull_in_thread(store: ImageStore, cancel: object = None,
                    ) -> tuple[threading.Thread, list[object]]:
    """The pull on its own thread; the list gets its events, then the error it raised."""
    out: list[object] = []

    def run() -> None:
        try:
            out.extend(store.pull(REF, cancel=cancel))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _pull_held(store: ImageStore, layout: Path, release: threading.Event) -> list[Any]:
    """A pull whose config the registry holds: once the layers are downloaded meanwhile,
    the config is released; the pull's events."""
    thread, out = _pull_in_thread(store)
    try:
        _wait(_downloaded(store, layout), "the layers were not downloaded meanwhile")
    finally:
        release.set()
        thread.join(30)
    return out


def test_layers_download_while_the_config_is_fetched(tmp_path: Path, layout: Path) -> None:
    registry = LayoutRegistry(layout)
    release = threading.Event()
    registry.hold[_config_digest(layout)] = (1, release)  # the config's second byte waits
    store = ImageStore(tmp_path / "root", registry)
    try:
        thread, out = _pull_in_thread(store)
        try:
            _wait(_downloaded(store, layout), "the layers were not downloaded meanwhile")
            # Downloaded and verified, but nothing committed before the config is checked.
            assert store.content.ids() == [] and store.snapshots.ids() == []
        finally:
            release.set()
            thread.join(30)
        result = out[-1]
        assert isinstance(result, types_pb2.PullProgress) and result.result.image_id
        assert store.get(REF).id == result.result.image_id
        assert store.check().problems == []
        assert list(store.content.ingests.iterdir()) == []
    finally:
        store.close()


def test_a_corrupt_config_leaves_nothing(tmp_path: Path, layout: Path) -> None:
    """The layers are whole and verified when the config turns out not to match."""
    registry = LayoutRegistry(layout)
    release = threading.Event()
    config = _config_digest(layout)
    registry.hold[config] = (1, release)
    registry.corrupt.add(config)
    store = ImageStore(tmp_path / "root", registry)
    try:
        out = _pull_held(store, layout, release)
        assert isinstance(out[-1], DataLoss), out
        assert config in str(out[-1])
        _nothing_stored(store)
        registry.corrupt.clear()
        registry.hold.clear()
        assert list(store.pull(REF))[-1].result.image_id  # a retry pulls it whole
        assert store.check().problems == []
    finally:
        store.close()


def _with_config(layout: Path, dest: Path, change: Callable[[dict], None]) -> Path:  # type: ignore[type-arg]
    """A copy of ``layout`` whose config is changed by ``change`` (its digest follows)."""
    bad = _build(dest)
    change_config(bad, change)
    return bad


def test_a_config_that_does_not_fit_the_manifest_leaves_nothing(tmp_path: Path) -> None:
    """Its digest matches, its diff IDs do not fit the layers: not even the config is kept."""
    bad = _with_config(tmp_path, tmp_path / "bad",
                       lambda cfg: cfg["rootfs"]["diff_ids"].pop())
    registry = LayoutRegistry(bad)
    release = threading.Event()
    registry.hold[_config_digest(bad)] = (1, release)
    store = ImageStore(tmp_path / "root", registry)
    try:
        out = _pull_held(store, bad, release)
        assert isinstance(out[-1], InvalidArgument), out
        assert "diff IDs" in str(out[-1])
        _nothing_stored(store)
    finally:
        store.close()


def test_a_pull_cancelled_before_its_config_leaves_nothing(tmp_path: Path,
                                                           layout: Path) -> None:
    from services.core.cancel import Cancel

    registry = LayoutRegistry(layout)
    release = threading.Event()
    registry.hold[_config_digest(layout)] = (1, release)
    store = ImageStore(tmp_path / "root", registry)
    cancel = Cancel()
    try:
        thread, out = _pull_in_thread(store, cancel)
        try:
            _wait(_downloaded(store, layout), "the layers were not downloaded meanwhile")
            cancel.set()  # the client went away
        finally:
            release.set()
            thread.join(30)
        assert isinstance(out[-1], Cancelled), out
        _nothing_stored(store)
    finally:
        store.close()


def test_a_layer_that_exists_gets_its_missing_blob_quietly(tmp_path: Path,
                                                           layout: Path) -> None:
    """A snapshot without its blob (another compression of the same diff ID made it):
    "Already exists", its blob fetched with the others, no progress shown for it."""
    registry = LayoutRegistry(layout)
    store = ImageStore(tmp_path / "root", registry)
    try:
        list(store.pull(REF))
        base = layout_manifest(layout)["layers"][0]["digest"]
        store.content.delete(base)  # the snapshot stays, its blob is gone
        evs = list(store.pull(REF))
        phases = [e.layer.phase for e in evs if e.WhichOneof("event") == "layer"
                  and e.layer.digest == base]
        assert phases == ["Already exists"]
        assert store.content.has(base)
        assert store.check().problems == []
    finally:
        store.close()
