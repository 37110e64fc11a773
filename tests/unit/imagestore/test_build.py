"""export / import / commit through the ImageStore facade (no servers): the merged view,
the conversion of overlay whiteouts to OCI entries, and the images made."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from muelle.types.v1 import types_pb2

from services.imagestore.store import ImageStore
from services.imagestore.treetar import TreeTar, diff_entries, merged_entries
from tests.unit.imagestore.fakes import LayoutRegistry, build_two_layer
from vocab.errors import InvalidArgument, NotFound

REF = "127.0.0.1:5000/demo/busybox:1"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layout") / "two"
    build_two_layer(path)
    return path


@pytest.fixture
def store(tmp_path: Path, layout: Path) -> Iterator[ImageStore]:
    s = ImageStore(tmp_path / "root", LayoutRegistry(layout))
    list(s.pull(REF))
    yield s
    s.close()


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def opaque(path: Path) -> None:
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def tar_members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|", errors="surrogateescape") as tar:
        for m in tar:
            f = tar.extractfile(m) if m.isreg() else None
            out[m.name] = (m, f.read() if f else b"")
    return out


# -- the tree walkers ---------------------------------------------------------------------


def test_merged_view_follows_overlay_rules(tmp_path: Path) -> None:
    low, mid, up = (tmp_path / n for n in ("low", "mid", "up"))
    for d in (low, mid, up):
        d.mkdir()
    (low / "gone").write_text("x")
    (low / "d").mkdir()
    (low / "d" / "hidden").write_text("x")
    (low / "m").mkdir()
    (low / "m" / "low-only").write_text("x")
    (low / "f").write_text("low")
    (mid / "d").mkdir()
    opaque(mid / "d")
    (mid / "d" / "new").write_text("x")
    (mid / "m").mkdir()
    (mid / "m" / "mid-only").write_text("x")
    whiteout(mid / "gone")
    (up / "f").write_text("up")
    (up / "gone").mkdir()  # recreated above a whiteout: only this layer's content counts
    opaque(up / "gone")
    names = {arc: path for arc, path, _ in merged_entries([str(up), str(mid), str(low)])}
    assert set(names) == {"d", "d/new", "m", "m/low-only", "m/mid-only", "f", "gone"}
    assert names["f"] == str(up / "f")


def test_diff_converts_overlay_whiteouts_to_oci(tmp_path: Path) -> None:
    up = tmp_path / "up"
    (up / "etc").mkdir(parents=True)
    whiteout(up / "etc" / "passwd")
    (up / "home").mkdir()
    opaque(up / "home")
    os.setxattr(up / "home", "user.keep", b"1")
    (up / "home" / "a").write_text("a")
    buf = io.BytesIO()
    tar = TreeTar(buf)
    tar.write(diff_entries(str(up)))
    tar.close()
    members = tar_members(buf.getvalue())
    assert list(members) == ["etc", "etc/.wh.passwd", "home", "home/.wh..wh..opq", "home/a"]
    assert members["etc/.wh.passwd"][0].isreg()
    pax = members["home"][0].pax_headers
    assert pax.get("SCHILY.xattr.user.keep") == "1"
    assert not [k for k in pax if "overlay" in k]


# -- commit -------------------------------------------------------------------------------


def change_rootfs(store: ImageStore, cid: str) -> Path:
    """What a container would do: add, modify, delete a file, replace a dir's content."""
    store.prepare_rootfs(cid, REF)
    upper = store.snapshots.container_dir(cid) / "upper"
    (upper / "etc").mkdir()
    (upper / "etc" / "motd").write_text("changed\n")
    (upper / "added").write_text("new\n")
    os.chmod(upper / "added", 0o4755)
    whiteout(upper / "etc" / "passwd")
    (upper / "home").mkdir()
    opaque(upper / "home")
    (upper / "home" / "only").write_text("only\n")
    return upper


def test_commit_makes_an_image_with_the_changes(store: ImageStore) -> None:
    change_rootfs(store, "c1")
    cfg = types_pb2.ImageConfig(env=["A=1"], working_dir="/home", user="1:2")
    cfg.cmd.values.extend(["echo", "hi"])
    parent = store.get(REF)
    rec, name = store.commit("c1", cfg, "demo/committed:v1", author="me", comment="msg",
                             created_by="/bin/sh -c echo")
    assert name == "docker.io/demo/committed:v1"
    assert store.get("demo/committed:v1").id == rec.id
    assert rec.diff_ids[:-1] == parent.diff_ids and len(rec.diff_ids) == 3
    doc = json.loads(rec.config_json)
    assert doc["config"]["Cmd"] == ["echo", "hi"]
    assert doc["config"]["Env"] == ["A=1"]
    assert doc["config"]["User"] == "1:2"
    assert doc["author"] == "me" and doc["container"] == "c1"
    assert doc["history"][-1]["comment"] == "msg"
    assert doc["history"][-1]["created_by"] == "/bin/sh -c echo"
    assert doc["rootfs"]["diff_ids"] == rec.diff_ids

    store.prepare_rootfs("c2", rec.id)
    members = tar_members(b"".join(store.export("c2")))
    assert members["etc/motd"][1] == b"changed\n"
    assert members["added"][1] == b"new\n"
    assert members["added"][0].mode == 0o4755
    assert "etc/passwd" not in members
    assert "etc/group" not in members  # deleted by the parent image's second layer
    assert [n for n in members if n.startswith("home/")] == ["home/only"]
    assert not [n for n in members if ".wh." in n]
    assert store.check().problems == []


def test_commit_of_an_unchanged_container_adds_an_empty_layer(store: ImageStore) -> None:
    store.prepare_rootfs("c1", REF)
    rec, name = store.commit("c1", types_pb2.ImageConfig())
    assert name == "" and len(rec.diff_ids) == 3
    assert rec.repo_tags == []


def test_commit_refuses_unknown_container_and_digest_names(store: ImageStore) -> None:
    with pytest.raises(NotFound):
        store.commit("nope", types_pb2.ImageConfig())
    store.prepare_rootfs("c1", REF)
    with pytest.raises(InvalidArgument):
        store.commit("c1", types_pb2.ImageConfig(), "x@sha256:" + "0" * 64)


# -- export and import --------------------------------------------------------------------


def test_export_then_import_round_trips(store: ImageStore) -> None:
    change_rootfs(store, "c1")
    exported = b"".join(store.export("c1"))
    rec, name = store.import_image(iter([exported[:1000], exported[1000:]]), "imported",
                                   "from a test")
    assert name == "docker.io/library/imported:latest"
    assert len(rec.diff_ids) == 1
    doc = json.loads(rec.config_json)
    assert doc["os"] == "linux" and doc["history"][0]["comment"] == "from a test"
    store.prepare_rootfs("c2", "imported")
    again = b"".join(store.export("c2"))
    a, b = tar_members(exported), tar_members(again)
    assert list(a) == list(b)
    for n in a:
        assert (a[n][0].mode, a[n][0].uid, a[n][0].type, a[n][1]) == \
            (b[n][0].mode, b[n][0].uid, b[n][0].type, b[n][1]), n


def test_import_accepts_gzip(store: ImageStore) -> None:
    import gzip

    store.prepare_rootfs("c1", REF)
    data = gzip.compress(b"".join(store.export("c1")))
    rec, _ = store.import_image(iter([data]))
    assert rec.repo_tags == []


# A gzip header over deflate data that does not decode (the inflater's own error).
_BAD_DEFLATE = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 64


@pytest.mark.parametrize("data", [b"this is not a tar" * 100, b"\x1f\x8b\x08garbage", b"",
                                  _BAD_DEFLATE])
def test_import_refuses_what_is_not_a_tar(store: ImageStore, data: bytes) -> None:
    before = {r.id for r in store.list_images()}
    with pytest.raises(InvalidArgument):
        store.import_image(iter([data]), "bad")
    assert {r.id for r in store.list_images()} == before
    assert store.check().problems == []
    assert os.listdir(store.tmp) == []
