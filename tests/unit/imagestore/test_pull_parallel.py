"""Layers above one still downloading are unpacked from their own downloads meanwhile
(pull.py): a layer's snapshot may be committed before the ones below it, and a hardlink to
a lower layer's file waits for that layer (unpack's ``lowers_ready``)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from muelle.types.v1 import types_pb2

from services.imagestore.store import ImageStore
from tests.support.images import Entry, Layer, build_layout
from tests.unit.imagestore.fakes import LayoutRegistry, layout_manifest
from vocab import digest as digestmod

REF = "127.0.0.1:5000/demo/busybox:1"
BASE = random.Random("base").randbytes(300_000)  # incompressible: a download worth holding


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layout") / "three"
    build_layout(path, [
        Layer([Entry("etc", "dir"), Entry("etc/base", data=BASE)]),
        # A hardlink to the layer below: copied up from it once it is committed.
        Layer([Entry("etc", "dir"), Entry("etc/link", "hardlink", target="etc/base"),
               Entry("etc/one", data=b"one")]),
        Layer([Entry("srv", "dir"), Entry("srv/two", data=b"two" * 1000)]),
    ], tag="1")
    return path


@pytest.fixture
def pulling(tmp_path: Path, layout: Path) -> Iterator[tuple[ImageStore, LayoutRegistry]]:
    """A store pulling from ``layout``, and the fake registry that serves it."""
    registry = LayoutRegistry(layout)
    store = ImageStore(tmp_path / "root", registry)
    yield store, registry
    store.close()


_manifest = layout_manifest


def _chains(layout: Path) -> list[str]:
    man = _manifest(layout)
    config = json.loads((layout / "blobs/sha256" / man["config"]["digest"][7:]).read_text())
    diff_ids = config["rootfs"]["diff_ids"]
    return [digestmod.chain_id(diff_ids[: i + 1]) for i in range(len(diff_ids))]


def _wait(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10  # a bound, not a timing: the state is what is asserted
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)
    assert condition(), what  # type: ignore[operator]


def test_upper_layers_unpack_while_a_lower_one_downloads(
        pulling: tuple[ImageStore, LayoutRegistry], layout: Path, tmp_path: Path) -> None:
    store, registry = pulling
    first = _manifest(layout)["layers"][0]
    release = threading.Event()
    registry.hold[first["digest"]] = (first["size"] // 2, release)
    snapshots = tmp_path / "root" / "snapshots"
    chains = [c.split(":")[1] for c in _chains(layout)]
    pulled: list[list[types_pb2.PullProgress]] = []
    thread = threading.Thread(target=lambda: pulled.append(list(store.pull(REF))))
    thread.start()
    try:
        # The top layer needs nothing of the held one: it is committed meanwhile.
        _wait(lambda: (snapshots / chains[2]).is_dir(), "the top layer waited for the base")
        # The middle one hardlinks to the base's file: it waits for the base.
        assert not (snapshots / chains[1]).exists()
        assert not (snapshots / chains[0]).exists()
        assert pulled == []
    finally:
        release.set()
        thread.join(30)
    evs = pulled[0]
    assert evs[-1].result.image_id
    link = snapshots / chains[1] / "fs" / "etc" / "link"
    assert link.read_bytes() == BASE  # copied up from the base layer
    assert os.stat(link).st_nlink == 1
    assert (snapshots / chains[2] / "fs" / "srv" / "two").read_bytes() == b"two" * 1000
    for digest in (d["digest"] for d in _manifest(layout)["layers"]):
        phases = [e.layer.phase for e in evs if e.WhichOneof("event") == "layer"
                  and e.layer.digest == digest]
        assert phases[-1] == "Pull complete", phases
    # Reported in order, as docker does: the base's "Pull complete" comes first.
    done = [e.layer.digest for e in evs if e.WhichOneof("event") == "layer"
            and e.layer.phase == "Pull complete"]
    assert done == [d["digest"] for d in _manifest(layout)["layers"]]
    assert not list(snapshots.glob(".tmp-*"))


def test_a_failed_lower_layer_leaves_no_image_and_no_half_layer(
        pulling: tuple[ImageStore, LayoutRegistry], layout: Path, tmp_path: Path) -> None:
    store, registry = pulling
    # The base layer's bytes are corrupt: the pull fails; layers above that were unpacked
    # meanwhile may stay as snapshots (verified, reusable), but nothing half-made and no
    # image record.
    first = _manifest(layout)["layers"][0]
    registry.corrupt.add(first["digest"])
    with pytest.raises(Exception, match="digest mismatch"):
        list(store.pull(REF))
    assert store.list_images() == []
    _wait(lambda: not list((tmp_path / "root" / "snapshots").glob(".tmp-*")),
          "a half-made snapshot was left")
    assert not (tmp_path / "root" / "snapshots" / _chains(layout)[0].split(":")[1]).exists()
