"""AddFiles' placement of a build step's files in a parent image (no store, real dirs)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from services.imagestore.addfiles import Placement, owner
from services.imagestore.view import read_file, resolve
from vocab.errors import InvalidArgument


@pytest.fixture
def layers(tmp_path: Path) -> list[str]:
    base, top = tmp_path / "base", tmp_path / "top"
    (base / "etc").mkdir(parents=True)
    (base / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/h:/bin/sh\n")
    (base / "etc/group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:\n")
    (base / "srv/app").mkdir(parents=True)
    (base / "srv/file").write_text("x")
    top.mkdir()
    os.symlink("/srv/app", top / "app")
    os.symlink("../../../../etc", top / "escape")  # .. stops at the image's root
    return [str(top), str(base)]


def _tar(entries: dict[str, bytes | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o700
                tar.addfile(info)
            else:
                info.size, info.mode, info.uid = len(data), 0o640, 123
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _written(place: Placement, src: io.BytesIO) -> dict[str, tarfile.TarInfo]:
    out = io.BytesIO()
    place.write(src, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_resolve_follows_links_inside_the_image(layers: list[str]) -> None:
    assert resolve(layers, "/app/x")[0] == "srv/app/x"
    assert resolve(layers, "/escape/passwd")[0] == "etc/passwd"
    assert read_file(layers, "/escape/passwd") is not None
    assert resolve(layers, "/nope/a")[1] is None


def test_chown_names_from_the_image(layers: list[str]) -> None:
    assert owner(layers, "app") == (1000, 1000)
    assert owner(layers, "app:staff") == (1000, 50)
    assert owner(layers, "7:8") == (7, 8)
    with pytest.raises(InvalidArgument, match="no such user: bob"):
        owner(layers, "bob")


def test_single_file_into_a_symlinked_directory(layers: list[str]) -> None:
    got = _written(Placement(layers, "/app", "f", "app", "755"), _tar({"f": b"hi"}))
    assert list(got) == ["srv", "srv/app", "srv/app/f"]
    f = got["srv/app/f"]
    assert (f.uid, f.gid, f.mode) == (1000, 1000, 0o755)


def test_single_file_renamed_and_new_parents_made(layers: list[str]) -> None:
    got = _written(Placement(layers, "/new/dir/g", "f", "", ""), _tar({"f": b"hi"}))
    assert list(got) == ["new", "new/dir", "new/dir/g"]
    assert got["new"].mode == 0o755 and got["new/dir/g"].uid == 123


def test_directory_contents_into_a_new_directory(layers: list[str]) -> None:
    place = Placement(layers, "/opt/x/", "", "7:8", "")
    got = _written(place, _tar({".": None, "a": b"1", "sub": None, "sub/b": b"2"}))
    assert list(got) == ["opt", "opt/x", "opt/x/a", "opt/x/sub", "opt/x/sub/b"]
    assert all((m.uid, m.gid) == (7, 8) for m in got.values())


def test_workdir_that_exists_writes_nothing(layers: list[str]) -> None:
    place = Placement(layers, "/srv/app", "", "", "")
    _written(place, _tar({}))
    assert place.written == 0
    place = Placement(layers, "/srv/app/new", "", "", "")
    assert list(_written(place, _tar({}))) == ["srv", "srv/app", "srv/app/new"]
    assert place.written == 1


def test_refusals(layers: list[str]) -> None:
    with pytest.raises(InvalidArgument, match="not a directory"):
        Placement(layers, "/srv/file/", "", "", "")
    with pytest.raises(InvalidArgument, match="outside"):
        _written(Placement(layers, "/x/", "", "", ""), _tar({"../evil": b"x"}))
    with pytest.raises(InvalidArgument, match="octal"):
        Placement(layers, "/x", "", "", "9z")
