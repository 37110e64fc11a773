"""Pull, lookup, remove and rootfs preparation through the ImageStore facade, against a
fake registry client that serves an OCI layout."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from muelle.types.v1 import types_pb2

from services.imagestore.server import encode_image
from services.imagestore.store import ImageStore
from tests.support.images import Entry, Layer, build_layout
from tests.unit.imagestore.fakes import (
    LayoutRegistry,
    build_two_layer,
    change_config,
    layout_manifest,
)
from vocab.errors import (
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)

REF = "127.0.0.1:5000/demo/busybox:1"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layout") / "two"
    build_two_layer(path)
    return path


@pytest.fixture
def registry(layout: Path) -> LayoutRegistry:
    return LayoutRegistry(layout)


@pytest.fixture
def store(tmp_path: Path, registry: LayoutRegistry) -> Iterator[ImageStore]:
    s = ImageStore(tmp_path / "root", registry)
    yield s
    s.close()


def events(store: ImageStore, ref: str = REF) -> list[types_pb2.PullProgress]:
    return list(store.pull(ref))


manifest = layout_manifest


def test_pull_progress_like_docker(store: ImageStore, layout: Path) -> None:
    evs = events(store)
    assert evs[0].status == "1: Pulling from demo/busybox"
    layers = [d["digest"] for d in manifest(layout)["layers"]]
    for digest in layers:
        phases = [e.layer.phase for e in evs if e.WhichOneof("event") == "layer"
                  and e.layer.digest == digest]
        assert phases[0] == "Pulling fs layer" and phases[-1] == "Pull complete"
        assert "Downloading" in phases and "Download complete" in phases
        assert phases.count("Downloading") <= 6
    statuses = [e.status for e in evs if e.WhichOneof("event") == "status"]
    assert statuses[-2].startswith("Digest: sha256:")
    assert statuses[-1] == f"Status: Downloaded newer image for {REF}"
    result = evs[-1].result
    assert result.reference == REF and not result.up_to_date
    image = store.get(REF)
    assert result.image_id == image.id and result.digest == image.root_digest


def test_second_pull_is_up_to_date(store: ImageStore, registry: LayoutRegistry) -> None:
    events(store)
    fetched = len(registry.fetches)
    evs = events(store)
    assert len(registry.fetches) == fetched
    assert evs[-1].result.up_to_date
    phases = {e.layer.phase for e in evs if e.WhichOneof("event") == "layer"}
    assert phases == {"Already exists"}


def test_image_message(store: ImageStore) -> None:
    events(store)
    img = encode_image(store.get("127.0.0.1:5000/demo/busybox:1"))
    assert img.repo_tags == [REF]
    assert img.repo_digests[0].startswith("127.0.0.1:5000/demo/busybox@sha256:")
    assert list(img.config.entrypoint.values) == ["/bin/sh", "-c"]
    assert list(img.config.cmd.values) == ["sh"]
    assert img.config.working_dir == "/home" and img.config.labels == {"a": "b"}
    assert list(img.config.exposed_ports) == ["80/tcp"]
    assert img.platform.os == "linux" and img.platform.architecture == "amd64"
    assert len(img.diff_ids) == 2 and img.chain_id and img.size > 100_000
    assert json.loads(img.config_json)["rootfs"]["diff_ids"] == list(img.diff_ids)


def test_snapshots_hold_overlay_diffs(store: ImageStore) -> None:
    events(store)
    image = store.get(REF)
    top = store.snapshots.fs(image.chain_ids[1])
    st = (top / "etc/group").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(top / "home", "trusted.overlay.opaque") == b"y"
    assert (top / "home/app/keep").read_text() == "kept\n"
    assert (top / "bin/bb-link").stat().st_size == (
        store.snapshots.fs(image.chain_ids[0]) / "bin/busybox").stat().st_size
    assert not (top / "bin/busybox").exists()


def test_prepare_and_remove_rootfs(store: ImageStore) -> None:
    events(store)
    image = store.get(REF)
    mount, image_id = store.prepare_rootfs("c1", "127.0.0.1:5000/demo/busybox:1")
    assert image_id == image.id
    assert mount.type == "overlay" and mount.source == "overlay"
    lower, upper, work = mount.options
    assert lower == "lowerdir=" + ":".join(
        str(store.snapshots.fs(c)) for c in reversed(image.chain_ids))
    assert upper.startswith("upperdir=") and Path(upper.split("=", 1)[1]).is_dir()
    assert work.startswith("workdir=") and Path(work.split("=", 1)[1]).is_dir()
    with pytest.raises(AlreadyExists):
        store.prepare_rootfs("c1", REF)
    with pytest.raises(InvalidArgument):
        store.prepare_rootfs("../escape", REF)
    with pytest.raises(NotFound):
        store.prepare_rootfs("c2", "nosuchimage")
    store.remove_rootfs("c1")
    store.remove_rootfs("c1")  # idempotent
    assert not store.snapshots.container_dir("c1").exists()


def test_remove_refuses_image_in_use(store: ImageStore) -> None:
    events(store)
    image = store.get(REF)
    store.prepare_rootfs("c1", REF)
    with pytest.raises(FailedPrecondition, match="being used by container c1"):
        store.remove(image.id)
    with pytest.raises(FailedPrecondition):
        store.remove(REF)
    assert store.get(REF).id == image.id  # nothing changed
    removed = store.remove(REF, force=True)
    assert image.id in removed.deleted
    with pytest.raises(NotFound):
        store.get(image.id)
    # The container's layers stay until its rootfs goes.
    assert all(store.snapshots.exists(c) for c in image.chain_ids)
    store.remove_rootfs("c1")
    assert not any(store.snapshots.exists(c) for c in image.chain_ids)


def test_remove_by_name_untags_then_deletes(tmp_path: Path, store: ImageStore,
                                            registry: LayoutRegistry) -> None:
    events(store)
    events(store, "127.0.0.1:5000/demo/busybox:other")
    image = store.get(REF)
    with pytest.raises(FailedPrecondition):
        store.remove(image.id)  # two tags: must be forced
    removed = store.remove("127.0.0.1:5000/demo/busybox:other")
    assert removed.untagged == ["127.0.0.1:5000/demo/busybox:other"] and not removed.deleted
    removed = store.remove(REF)
    assert REF in removed.untagged and image.id in removed.deleted
    assert set(removed.deleted[1:]) == set(image.chain_ids)
    assert store.list_images() == []
    assert store.content.ids() == [] and store.snapshots.ids() == []


def test_shared_layers_are_unpacked_once_and_kept(tmp_path: Path, store: ImageStore,
                                                  layout: Path) -> None:
    events(store)
    base_only = tmp_path / "base"
    build_layout(base_only, [Layer([Entry("only", data=b"x")])], tag="1")
    other = LayoutRegistry(base_only, "127.0.0.1:5000/demo/other")
    store.puller.registry = other
    events(store, "127.0.0.1:5000/demo/other:1")
    store.puller.registry = LayoutRegistry(layout)
    store.remove("127.0.0.1:5000/demo/other:1")
    assert store.get(REF)  # the busybox image is intact
    assert all(store.snapshots.exists(c) for c in store.get(REF).chain_ids)


def test_corrupt_layer_stores_no_image(store: ImageStore, registry: LayoutRegistry,
                                       layout: Path) -> None:
    top = manifest(layout)["layers"][1]["digest"]
    registry.corrupt.add(top)
    with pytest.raises(DataLoss):
        events(store)
    assert store.list_images() == []
    assert len(store.snapshots.ids()) <= 1  # at most the base layer, reusable later
    assert not store.content.has(top)
    registry.corrupt.clear()
    assert events(store)[-1].result.image_id


def test_interrupted_layer_resumes(store: ImageStore, registry: LayoutRegistry,
                                   layout: Path) -> None:
    base = manifest(layout)["layers"][0]["digest"]
    registry.drop_after[base] = 200_000
    with pytest.raises(Unavailable):
        events(store)
    assert store.list_images() == []
    events(store)
    assert (base, 200_000) in registry.fetches


def test_diff_id_mismatch_leaves_no_snapshot(tmp_path: Path, layout: Path) -> None:
    bad = tmp_path / "bad"
    build_layout(bad, [Layer([Entry("a", data=b"x")])], tag="1")
    change_config(bad, lambda cfg: cfg["rootfs"].update(diff_ids=["sha256:" + "0" * 64]))
    s = ImageStore(tmp_path / "root", LayoutRegistry(bad))
    try:
        with pytest.raises(DataLoss, match="diff ID"):
            list(s.pull(REF))
        assert s.list_images() == [] and s.snapshots.ids() == []
        assert not [p for p in s.snapshots.snapshots.iterdir()]
    finally:
        s.close()


def test_bad_references(store: ImageStore) -> None:
    with pytest.raises(InvalidArgument):
        events(store, "Not A Ref")
    with pytest.raises(InvalidArgument):
        store.get("")


def test_cancelled_pull_stops_downloads(store: ImageStore, registry: LayoutRegistry) -> None:
    registry.gate = threading.Event()
    stream = store.pull(REF)
    first = next(stream)
    assert first.status.endswith("Pulling from demo/busybox")
    stream.close()  # what gRPC does when the client cancels
    registry.gate.set()
    assert store.list_images() == []


def test_a_layer_is_unpacked_while_it_downloads(store: ImageStore, registry: LayoutRegistry,
                                                layout: Path, tmp_path: Path) -> None:
    first = manifest(layout)["layers"][0]
    release = threading.Event()
    registry.hold[first["digest"]] = (first["size"] * 3 // 4, release)
    pulled: list[list[types_pb2.PullProgress]] = []
    thread = threading.Thread(target=lambda: pulled.append(events(store)))
    thread.start()
    try:
        # Held at 3/4 of its bytes, the layer's unpack has begun: files exist in the
        # snapshot being made (nothing is committed before the whole layer checked out).
        deadline = time.monotonic() + 10
        while not list(tmp_path.glob("root/**/.tmp-*/fs/bin")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(tmp_path.glob("root/**/.tmp-*/fs/bin")), "no unpack during the download"
        assert pulled == []  # still held
    finally:
        release.set()
        thread.join(30)
    evs = pulled[0]
    assert evs[-1].result.image_id
    phases = [e.layer.phase for e in evs if e.WhichOneof("event") == "layer"
              and e.layer.digest == first["digest"]]
    assert phases[0] == "Pulling fs layer" and phases[-1] == "Pull complete"
    assert phases.index("Download complete") < phases.index("Pull complete")
    assert store.get(REF).id == evs[-1].result.image_id
    assert not list(tmp_path.glob("root/**/.tmp-*"))  # committed, nothing half-made
