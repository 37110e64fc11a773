"""Reference counting and garbage collection, prune, disk usage, `system check` and
start-up recovery, through the ImageStore facade (fake registry client)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from services.imagestore import recover as recovermod
from services.imagestore.store import ImageStore
from tests.unit.imagestore.fakes import LayoutRegistry
from vocab.errors import FailedPrecondition

REPO = "127.0.0.1:5000/demo/app"


def pull(store: ImageStore, layout: Path, ref: str) -> str:
    store.puller.registry = LayoutRegistry(layout, ref.rsplit(":", 1)[0])
    return list(store.pull(ref))[-1].result.image_id


def test_shared_base_is_stored_once_and_freed_last(store: ImageStore,
                                                   layouts: dict[str, Path]) -> None:
    a = store.get(pull(store, layouts["a"], f"{REPO}-a:1"))
    b = store.get(pull(store, layouts["b"], f"{REPO}-b:1"))
    base = a.chain_ids[0]
    assert b.chain_ids[0] == base and a.chain_id != b.chain_id
    assert len(store.snapshots.ids()) == 3  # base unpacked once
    layer_blobs = set(a.blobs) & set(b.blobs)
    assert len(layer_blobs) == 1  # the base layer blob, stored once

    removed = store.remove(f"{REPO}-a:1")
    assert removed.deleted == [a.id, a.chain_id]
    assert removed.reclaimed > 0
    assert store.snapshots.exists(base) and store.snapshots.exists(b.chain_id)
    assert set(store.content.ids()) == set(b.blobs)
    assert store.check().problems == []

    store.remove(f"{REPO}-b:1")
    assert store.list_images() == []
    assert store.snapshots.ids() == [] and store.content.ids() == []
    assert store.metadata.snapshot_ids() == []
    # Only metadata is left.
    left = {p.name for p in store.root.iterdir()}
    assert left <= {"metadata.db", "metadata.db-wal", "metadata.db-shm", "blobs", "ingest",
                    "snapshots", "containers", "tmp"}
    assert not any((store.root / "blobs").rglob("*.*")) and not any(
        (store.root / "ingest").iterdir())


def test_rmi_refuses_image_in_use_unless_forced(store: ImageStore,
                                                layouts: dict[str, Path]) -> None:
    a = store.get(pull(store, layouts["a"], f"{REPO}-a:1"))
    store.prepare_rootfs("c1", a.id)
    with pytest.raises(FailedPrecondition, match="being used by container c1"):
        store.remove(f"{REPO}-a:1")
    assert store.remove(f"{REPO}-a:1", force=True).deleted == [a.id]
    assert all(store.snapshots.exists(c) for c in a.chain_ids)  # the container keeps them
    store.remove_rootfs("c1")
    assert store.snapshots.ids() == []


def test_prune_dangling_then_all(store: ImageStore, layouts: dict[str, Path]) -> None:
    old = pull(store, layouts["a"], f"{REPO}:1")
    new = pull(store, layouts["b"], f"{REPO}:1")  # the tag moves: `old` is dangling
    assert store.get(old).repo_tags == []
    used = pull(store, layouts["a"], f"{REPO}-used:1")  # tags `old` again
    assert used == old
    assert store.prune().deleted == []  # nothing dangling now
    store.remove(f"{REPO}-used:1")  # untags; its repo digest keeps it
    pruned = store.prune()
    assert pruned.deleted[0] == old and store.get(new)
    assert {i.id for i in store.list_images()} == {new}

    other = pull(store, layouts["a"], f"{REPO}-c:1")
    store.prepare_rootfs("c2", other)
    pruned = store.prune(all=True)
    assert pruned.deleted[0] == new and pruned.reclaimed > 0
    assert [i.id for i in store.list_images()] == [other]  # in use: kept
    store.remove_rootfs("c2")
    assert store.prune(all=True).deleted[0] == other
    assert store.snapshots.ids() == [] and store.content.ids() == []


def test_prune_collects_leftovers_of_interrupted_pulls(store: ImageStore,
                                                       layouts: dict[str, Path]) -> None:
    # A pull that dies after committing a blob and unpacking a layer, before its record:
    data = b"orphan layer"
    digest = _blob(data)[0]
    store.content.write(digest, data)
    chain = "sha256:" + "d" * 64
    store.snapshots.create(chain, [], lambda fs: (fs / "f").write_bytes(b"12345"))
    store.metadata.put_snapshot(chain, 5)
    a = pull(store, layouts["a"], f"{REPO}:1")
    pruned = store.prune()
    assert pruned.deleted == [chain] and pruned.reclaimed == 5 + len(data)
    assert store.get(a) and store.check().problems == []
    assert set(store.content.ids()) == set(store.get(a).blobs)


def _blob(data: bytes) -> tuple[str, bytes]:
    import hashlib

    return f"sha256:{hashlib.sha256(data).hexdigest()}", data


def test_usage(store: ImageStore, layouts: dict[str, Path]) -> None:
    a = pull(store, layouts["a"], f"{REPO}-a:1")
    b = pull(store, layouts["b"], f"{REPO}-b:1")
    store.prepare_rootfs("c3", a)
    (store.snapshots.container_dir("c3") / "upper" / "written").write_bytes(b"x" * 100)
    du = store.usage()
    by_id = {i.id: i for i in du.images}
    assert by_id[a].containers == 1 and by_id[b].containers == 0
    base = store.get(a).chain_ids[0]
    base_size = store.metadata.snapshot_size(base)
    assert base_size and by_id[a].shared_size == base_size == by_id[b].shared_size
    assert du.layers_size == by_id[a].size + by_id[b].size - base_size
    assert du.reclaimable_size == du.layers_size - by_id[a].size
    assert [(c.id, c.image_id, c.size) for c in du.containers] == [("c3", a, 100)]
    assert du.blobs_size == sum(store.content.size(d) for d in store.content.ids())
    store.remove_rootfs("c3")


def test_check_finds_a_flipped_byte(store: ImageStore, layouts: dict[str, Path]) -> None:
    a = store.get(pull(store, layouts["a"], f"{REPO}:1"))
    assert store.check().problems == []
    layer = a.blobs[-1]
    path = store.content.path(layer)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = store.check()
    assert [(p.kind, p.subject) for p in report.problems] == [("blob", layer)]
    assert "content has digest" in report.problems[0].message
    assert report.blobs == len(a.blobs) and report.images == 1


def test_check_finds_missing_snapshots_and_records(store: ImageStore,
                                                   layouts: dict[str, Path]) -> None:
    a = store.get(pull(store, layouts["a"], f"{REPO}:1"))
    store.snapshots.remove(a.chain_id)
    stray = store.snapshots.snapshots / ("f" * 64) / "fs"
    stray.mkdir(parents=True)
    kinds = {(p.kind, p.subject) for p in store.check().problems}
    assert kinds == {("snapshot", a.chain_id), ("image", a.id),
                     ("snapshot", "sha256:" + "f" * 64)}


def test_start_up_recovery(tmp_path: Path, layouts: dict[str, Path]) -> None:
    root = tmp_path / "root"
    s = ImageStore(root, LayoutRegistry(layouts["a"], REPO))
    a = s.get(pull(s, layouts["a"], f"{REPO}:1"))
    s.close()
    # What a kill -9 can leave: an unpack in progress, a committed snapshot whose record
    # was not written yet, a partial of a committed blob, an old partial, junk in ingest/.
    (root / "snapshots/.tmp-x1/fs").mkdir(parents=True)
    unrecorded = root / "snapshots" / ("e" * 64) / "fs"
    unrecorded.mkdir(parents=True)
    (root / "containers/.trash-c9/upper").mkdir(parents=True)
    done = a.blobs[-1].replace(":", "-") + ".partial"
    (root / "ingest" / done).write_bytes(b"abc")
    old = root / "ingest" / (("sha256-" + "1" * 64) + ".partial")
    old.write_bytes(b"abc")
    os.utime(old, (time.time() - 2 * recovermod.INGEST_MAX_AGE,) * 2)
    fresh = root / "ingest" / (("sha256-" + "2" * 64) + ".partial")
    fresh.write_bytes(b"abc")  # resumable: kept
    (root / "ingest" / "junk").write_bytes(b"?")
    s = ImageStore(root, LayoutRegistry(layouts["a"], REPO))
    try:
        assert sorted(p.name for p in (root / "ingest").iterdir()) == [fresh.name]
        assert sorted(p.name for p in (root / "snapshots").iterdir()) == sorted(
            c.removeprefix("sha256:") for c in a.chain_ids)
        assert list((root / "containers").iterdir()) == []
        assert s.recovered.snapshots == ["sha256:" + "e" * 64]
        assert s.check().problems == []
        assert s.get(f"{REPO}:1").id == a.id
    finally:
        s.close()


def test_recovery_rebuilds_a_used_snapshot_record(tmp_path: Path,
                                                  layouts: dict[str, Path]) -> None:
    root = tmp_path / "root"
    s = ImageStore(root, LayoutRegistry(layouts["a"], REPO))
    a = s.get(pull(s, layouts["a"], f"{REPO}:1"))
    size = s.metadata.snapshot_size(a.chain_id)
    s.metadata.delete_snapshot(a.chain_id)
    s.close()
    s = ImageStore(root, LayoutRegistry(layouts["a"], REPO))
    try:
        assert s.recovered.records == [a.chain_id]
        assert s.metadata.snapshot_size(a.chain_id) == size
        assert s.check().problems == []
    finally:
        s.close()
