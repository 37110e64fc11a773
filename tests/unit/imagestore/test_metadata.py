"""Image lookup by name, ID, ID prefix and digest; names are canonical."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.imagestore.metadata import ImageRecord, Metadata
from vocab.errors import InvalidArgument, NotFound

ID_A = "sha256:" + "ab12" + "0" * 60
ID_B = "sha256:" + "ab12" + "1" * 60
MAN = "sha256:" + "c" * 64
ROOT = "sha256:" + "d" * 64


def record(image_id: str, manifest: str = MAN, root: str = ROOT) -> ImageRecord:
    return ImageRecord(image_id, manifest, root, b"{}", {"os": "linux"}, [image_id],
                       [image_id], [image_id], 10, "")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Metadata]:
    meta = Metadata(tmp_path / "m.db")
    meta.put_image(record(ID_A), ["docker.io/library/busybox:latest",
                                  f"docker.io/library/busybox@{ROOT}"])
    meta.put_image(record(ID_B, "sha256:" + "e" * 64, "sha256:" + "f" * 64),
                   ["127.0.0.1:5000/demo/app:1"])
    yield meta
    meta.close()


@pytest.mark.parametrize("text", [
    "busybox", "busybox:latest", "library/busybox", "docker.io/library/busybox:latest",
    "index.docker.io/library/busybox", ID_A, ID_A.removeprefix("sha256:"), "ab120",
    "sha256:ab120", f"busybox@{ROOT}", f"busybox:latest@{ROOT}", f"busybox@{MAN}",
])
def test_lookup_finds_image_a(db: Metadata, text: str) -> None:
    assert db.resolve(text)[0].id == ID_A


def test_lookup_reports_the_name_used(db: Metadata) -> None:
    assert db.resolve("busybox")[1] == "docker.io/library/busybox:latest"
    assert db.resolve(ID_A)[1] is None


def test_ambiguous_prefix(db: Metadata) -> None:
    with pytest.raises(InvalidArgument, match="ambiguous"):
        db.resolve("ab12")
    with pytest.raises(InvalidArgument, match="ambiguous"):
        db.resolve("sha256:ab12")
    with pytest.raises(NotFound):
        db.resolve("ab1")  # shorter than 4: only ever a name


def test_not_found(db: Metadata) -> None:
    for text in ("alpine", "abcd", "sha256:" + "9" * 64, "Bad Name", f"alpine@{ROOT}"):
        with pytest.raises((NotFound, InvalidArgument)):
            db.resolve(text)
    with pytest.raises(NotFound):
        db.resolve("ffff")


def test_list_newest_first_and_names(db: Metadata) -> None:
    images = db.list_images()
    assert [i.id for i in images] == [ID_B, ID_A]
    assert images[1].repo_tags == ["docker.io/library/busybox:latest"]
    assert images[1].repo_digests == [f"docker.io/library/busybox@{ROOT}"]


def test_reopen_keeps_data(tmp_path: Path) -> None:
    meta = Metadata(tmp_path / "m.db")
    meta.put_image(record(ID_A), ["docker.io/library/x:1"])
    meta.close()
    again = Metadata(tmp_path / "m.db")
    assert again.resolve("x:1")[0].id == ID_A
    again.close()
