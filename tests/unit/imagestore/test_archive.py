"""save/load through the ImageStore facade: round trip, docker-archive layouts (muelle's,
old docker's with uncompressed layer.tar and symlinks), OCI archives, bad archives."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.imagestore.store import ImageStore
from tests.support.images import Entry, Layer, build_layout, busybox_layer
from tests.unit.imagestore.fakes import LayoutRegistry
from vocab.errors import DataLoss, InvalidArgument, NotFound

REF = "127.0.0.1:5000/demo/app:1"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("archive") / "app"
    build_layout(path, [busybox_layer(), Layer([Entry("etc/app", data=b"app\n")])], tag="1")
    return path


def _store(path: Path, layout: Path) -> ImageStore:
    return ImageStore(path, LayoutRegistry(layout, REF.rsplit(":", 1)[0]))


@pytest.fixture
def stores(tmp_path: Path, layout: Path) -> Iterator[tuple[ImageStore, ImageStore]]:
    a, b = _store(tmp_path / "a", layout), _store(tmp_path / "b", layout)
    list(a.pull(REF))
    yield a, b
    a.close()
    b.close()


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _tar(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def test_save_writes_docker_archive_and_oci_layout(stores: tuple[ImageStore, ImageStore]) -> None:
    a, _ = stores
    rec = a.get(REF)
    files = _members(b"".join(a.save([REF])))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    [desc] = index["manifests"]
    assert desc["digest"] == rec.manifest_digest
    assert desc["annotations"]["io.containerd.image.name"] == REF
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "1"
    [entry] = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == [REF]
    assert entry["Config"] == "blobs/sha256/" + rec.id.removeprefix("sha256:")
    assert len(entry["Layers"]) == 2
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert a.content.read("sha256:" + name.rsplit("/", 1)[1]) == data
    assert json.loads(files["repositories"]) == {
        REF.rsplit(":", 1)[0]: {"1": rec.id.removeprefix("sha256:")}}


def test_round_trip(stores: tuple[ImageStore, ImageStore]) -> None:
    a, b = stores
    archive = b"".join(a.save([REF]))
    loaded = b.load([archive[i:i + 4096] for i in range(0, len(archive), 4096)])
    assert [(x.image_id, x.names) for x in loaded] == [(a.get(REF).id, [REF])]
    ra, rb = a.get(REF), b.get(REF)
    assert (rb.manifest_digest, rb.chain_ids, rb.size) == (ra.manifest_digest, ra.chain_ids,
                                                           ra.size)
    assert (b.snapshots.fs(rb.chain_id) / "etc/app").read_bytes() == b"app\n"
    assert b.check().problems == [] and list(b.tmp.iterdir()) == []


def test_load_docker_archive_without_index(stores: tuple[ImageStore, ImageStore]) -> None:
    a, b = stores
    files = _members(b"".join(a.save([a.get(REF).id])))
    del files["index.json"], files["oci-layout"]
    [loaded] = b.load([_tar(files)])
    assert loaded.image_id == a.get(REF).id and loaded.names == [REF]
    assert b.check().problems == []


def test_load_old_docker_save_with_uncompressed_layers(stores: tuple[ImageStore, ImageStore],
                                                       layout: Path) -> None:
    a, b = stores
    rec = a.get(REF)
    raw = [gzip.decompress(a.content.read(d)) for d in rec.blobs[-2:]]
    files = {"cfg.json": rec.config_json, "l1/layer.tar": raw[0], "l2/layer.tar": raw[1],
             "manifest.json": json.dumps([
                 {"Config": "cfg.json", "RepoTags": ["busybox:app"],
                  "Layers": ["l1/layer.tar", "l3/layer.tar"]}]).encode()}
    [loaded] = b.load([_tar(files, links={"l3/layer.tar": "../l2/layer.tar"})])
    assert loaded.image_id == rec.id
    assert loaded.names == ["docker.io/library/busybox:app"]
    assert b.get("busybox:app").chain_ids == rec.chain_ids
    assert b.check().problems == []


def test_load_refuses_bad_archives(stores: tuple[ImageStore, ImageStore]) -> None:
    a, b = stores
    with pytest.raises(InvalidArgument, match="not a valid image archive"):
        b.load([b"this is not a tar"])
    with pytest.raises(InvalidArgument, match="no index.json or manifest.json"):
        b.load([_tar({"hello": b"x"})])
    files = _members(b"".join(a.save([REF])))
    layer = json.loads(files["manifest.json"])[0]["Layers"][1]
    files[layer] = files[layer][:-1] + bytes([files[layer][-1] ^ 1])
    with pytest.raises(DataLoss):
        b.load([_tar(files)])
    assert b.list_images() == [] and list(b.tmp.iterdir()) == []
    with pytest.raises(NotFound):
        b.save(["127.0.0.1:5000/demo/absent:1"])
    with pytest.raises(InvalidArgument):
        b.save([])
