"""A pull in progress holds what it has fetched or reuses (containerd's leases): prune and
image removal leave it alone, and the hold ends with the pull. The pull is a generator, so
stepping it by hand stops it at a known point, deterministically."""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterator
from pathlib import Path

from muelle.types.v1 import types_pb2

from services.imagestore.store import ImageStore
from tests.unit.imagestore.fakes import LayoutRegistry

REPO = "127.0.0.1:5000/demo/lease"


def _pull(store: ImageStore, layouts: dict[str, Path],
          name: str) -> Iterator[types_pb2.PullProgress]:
    store.puller.registry = LayoutRegistry(layouts[name], f"{REPO}-{name}")
    return store.pull(f"{REPO}-{name}:1")


def _until(events: Iterator[types_pb2.PullProgress], phase: str) -> None:
    for ev in events:
        if ev.HasField("layer") and ev.layer.phase == phase:
            return
    raise AssertionError(f"the pull ended before {phase!r}")


def test_prune_all_spares_what_a_pull_reuses(store: ImageStore,
                                             layouts: dict[str, Path]) -> None:
    a = store.get(list(_pull(store, layouts, "a"))[-1].result.image_id)
    pulling = _pull(store, layouts, "b")
    _until(pulling, "Already exists")  # b stands on a's base layer from here on
    pruned = store.prune(all=True)
    assert a.id in pruned.deleted  # a itself goes: no container, no pull uses it
    assert a.chain_ids[0] not in pruned.deleted
    result = list(pulling)[-1].result
    b = store.get(result.image_id)
    assert b.chain_ids[0] == a.chain_ids[0] and store.snapshots.exists(b.chain_ids[0])
    assert store.check().problems == []


def test_remove_spares_what_a_pull_reuses(store: ImageStore,
                                          layouts: dict[str, Path]) -> None:
    a = store.get(list(_pull(store, layouts, "a"))[-1].result.image_id)
    pulling = _pull(store, layouts, "b")
    _until(pulling, "Already exists")
    removed = store.remove(f"{REPO}-a:1")
    assert removed.deleted == [a.id, a.chain_id]  # its own top layer only
    assert store.get(list(pulling)[-1].result.image_id).chain_ids[0] == a.chain_ids[0]


def test_prune_during_a_download_spares_fetched_content(store: ImageStore,
                                                        layouts: dict[str, Path]) -> None:
    pulling = _pull(store, layouts, "a")
    _until(pulling, "Download complete")  # the config and a layer blob are committed
    store.prune(all=True)
    result = list(pulling)[-1].result
    assert store.get(result.image_id).id == result.image_id
    assert store.check().problems == []


def _stalled(store: ImageStore, layouts: dict[str, Path], name: str,
             release: threading.Event) -> Generator[types_pb2.PullProgress, None, None]:
    """A pull stepped to where its config blob is committed and every layer download is
    stalled after 500 bytes; once ``release`` is set they fail (nothing else commits)."""
    registry = LayoutRegistry(layouts[name], f"{REPO}-{name}")
    store.puller.registry = registry
    manifest = json.loads(registry.blob(json.loads(
        (layouts[name] / "index.json").read_text())["manifests"][0]["digest"]))
    for layer in manifest["layers"]:
        registry.hold[layer["digest"]] = (500, release)
        registry.drop_after[layer["digest"]] = 1000
    pulling = store.pull(f"{REPO}-{name}:1")
    for _ in manifest["layers"]:
        _until(pulling, "Pulling fs layer")
    assert store.content.ids() == [manifest["config"]["digest"]]
    return pulling


def test_the_hold_ends_with_the_pull(store: ImageStore, layouts: dict[str, Path]) -> None:
    release = threading.Event()
    pulling = _stalled(store, layouts, "a", release)
    assert store.prune().deleted == [] and len(store.content.ids()) == 1  # held
    pulling.close()  # the client went away (or the pull failed): nothing holds its content
    assert not store.leases.active()
    assert store.prune().reclaimed > 0 and store.content.ids() == []
    release.set()


def test_a_restart_drops_the_holds_of_pulls_it_cut(tmp_path: Path,
                                                   layouts: dict[str, Path]) -> None:
    release = threading.Event()
    first = ImageStore(tmp_path / "root", LayoutRegistry(tmp_path))
    _stalled(first, layouts, "a", release)
    first.close()  # as if killed: the pull never finishes nor releases its lease
    second = ImageStore(tmp_path / "root", LayoutRegistry(tmp_path))
    try:
        assert not second.leases.active()
        assert second.prune().reclaimed > 0 and second.content.ids() == []
    finally:
        second.close()
        release.set()
