"""The build context: unpacked safely but faithfully, trimmed by .dockerignore."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from services.builder.context import apply_dockerignore, read_dockerfile, unpack
from vocab.errors import InvalidArgument


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _file(name: str, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, b"x"


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def test_modes_and_outward_symlinks_are_kept(tmp_path: Path) -> None:
    unpack(_tar([_file("suid", 0o4755), _file("group-write", 0o775),
                 _link("out", "/etc/passwd")]), str(tmp_path))
    assert os.stat(tmp_path / "suid").st_mode & 0o7777 == 0o4755
    assert os.stat(tmp_path / "group-write").st_mode & 0o7777 == 0o775
    assert os.readlink(tmp_path / "out") == "/etc/passwd"


def test_nothing_lands_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(InvalidArgument, match="refusing the build context"):
        unpack(_tar([_link("etc", str(tmp_path)), _file("etc/planted")]), str(root))
    assert not (tmp_path / "planted").exists()
    with pytest.raises(InvalidArgument, match="refusing the build context"):
        unpack(_tar([_file("../escaped")]), str(root))
    assert not (tmp_path / "escaped").exists()
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        unpack(io.BytesIO(b"junk" * 300), str(root))


def test_dockerignore_keeps_the_dockerfile_readable(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / ".dockerignore").write_text("Dockerfile\n.dockerignore\nbuild\n!build/keep\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "keep").write_text("k")
    (tmp_path / "build" / "drop").write_text("d")
    assert read_dockerfile(str(tmp_path), "Dockerfile") == "FROM x\n"
    apply_dockerignore(str(tmp_path))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "build", "build/keep"]
    with pytest.raises(InvalidArgument, match="Cannot locate specified Dockerfile"):
        read_dockerfile(str(tmp_path), "Dockerfile")


@pytest.mark.parametrize("compress", ["gzip", "bz2", "lzma"])
def test_compressed_contexts_are_unpacked(tmp_path: Path, compress: str) -> None:
    """dockerd takes a context tar gzip, bzip2 or xz compressed (docker-py's gzip=True,
    any client's own compression)."""
    import importlib

    raw = _tar([_file("Dockerfile")]).getvalue()
    unpack(io.BytesIO(importlib.import_module(compress).compress(raw)), str(tmp_path))
    assert (tmp_path / "Dockerfile").read_bytes() == b"x"


def test_a_context_that_is_no_tar_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        unpack(io.BytesIO(b"FROM scratch\n" * 100), str(tmp_path))
