"""docker cp out of a container's layers: symlinks resolve inside its root, never to the
host's files, however they are spelled."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from services.imagestore import containerfiles
from vocab.errors import NotFound


def _layers(tmp_path: Path) -> tuple[list[str], Path]:
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("HOST SECRET")
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    (lower / "data").mkdir(parents=True)
    (lower / "data" / "f").write_text("mine")
    (upper / "data").mkdir(parents=True)
    (upper / "data" / "abs").symlink_to(host)
    (upper / "data" / "rel").symlink_to(f"../../../../../../..{host}")
    return [str(upper), str(lower)], host


@pytest.mark.parametrize("path", ["/data/abs/secret", "/data/rel/secret", "/data/abs/.",
                                  "/data/rel/"])
def test_a_link_out_of_the_root_finds_nothing_of_the_host(tmp_path: Path, path: str) -> None:
    layers, _ = _layers(tmp_path)
    with pytest.raises(NotFound, match="Could not find the file"):
        containerfiles.stat_path(layers, path)
    with pytest.raises(NotFound):
        b"".join(containerfiles.read(layers, path))


def test_a_link_is_copied_as_a_link_and_files_come_from_the_layers(tmp_path: Path) -> None:
    layers, host = _layers(tmp_path)
    name, st, target = containerfiles.stat_path(layers, "/data/abs")
    assert (name, target) == ("abs", str(host))
    data = b"".join(containerfiles.read(layers, "/data"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["data/abs"].issym() and members["data/abs"].linkname == str(host)
        f = tar.extractfile(members["data/f"])
        assert f is not None and f.read() == b"mine"
    assert b"HOST SECRET" not in data
