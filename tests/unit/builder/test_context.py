"""The build context: indexed safely but faithfully, trimmed by .dockerignore."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from services.builder.context import apply_dockerignore, index, read_dockerfile
from services.builder.tree import FILE, SYMLINK, Tree
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


def _data(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, data


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def test_modes_and_outward_symlinks_are_kept() -> None:
    tree = index(_tar([_file("suid", 0o4755), _file("group-write", 0o775),
                       _link("out", "/etc/passwd")]))
    suid, group_write, out = (tree.get(n) for n in ("suid", "group-write", "out"))
    assert suid is not None and suid.kind == FILE and suid.mode == 0o4755
    assert group_write is not None and group_write.mode == 0o775
    assert out is not None and out.kind == SYMLINK and out.linkname == "/etc/passwd"


def test_nothing_lands_outside() -> None:
    with pytest.raises(InvalidArgument, match="refusing the build context"):
        index(_tar([_link("etc", "/tmp"), _file("etc/planted")]))
    with pytest.raises(InvalidArgument, match="refusing the build context"):
        index(_tar([_link("up", "../.."), _file("up/planted")]))
    with pytest.raises(InvalidArgument, match="refusing the build context"):
        index(_tar([_file("../escaped")]))
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        index(io.BytesIO(b"junk" * 300))


def test_a_member_under_an_inner_symlink_lands_at_its_target() -> None:
    """As extraction writes through a symlink that stays inside the context."""
    tree = index(_tar([(_dir("real"), None), _link("alias", "real"), _file("alias/f")]))
    assert tree.get("real/f") is not None and tree.get("alias/f") is None


def test_a_hardlink_is_one_file_under_two_names() -> None:
    link = tarfile.TarInfo("b")
    link.type, link.linkname = tarfile.LNKTYPE, "a"
    tree = index(_tar([_file("a"), (link, None)]))
    assert tree.get("a") is tree.get("b")
    with pytest.raises(InvalidArgument, match="hard link target"):
        index(_tar([(link, None)]))


def test_dockerignore_keeps_the_dockerfile_readable() -> None:
    ignore = b"Dockerfile\n.dockerignore\nbuild\n!build/keep\ngone\n"
    tree = index(_tar([_data("Dockerfile", b"FROM x\n"), _data(".dockerignore", ignore),
                       (_dir("build"), None), _file("build/keep"), _file("build/drop"),
                       (_dir("gone"), None), _file("gone/x")]))
    assert read_dockerfile(tree, "Dockerfile") == "FROM x\n"
    apply_dockerignore(tree)
    assert [arc for arc, _ in tree.walk("")] == ["build", "build/keep"]
    with pytest.raises(InvalidArgument, match="Cannot locate specified Dockerfile"):
        read_dockerfile(tree, "Dockerfile")


def test_a_directory_tree_reads_the_same(tmp_path: Path) -> None:
    """COPY --from and ADD of a URL read a scratch directory: the same index."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    os.link(tmp_path / "d" / "f", tmp_path / "d" / "g")
    os.symlink("d/f", tmp_path / "l")
    tree = Tree.from_dir(str(tmp_path))
    assert [arc for arc, _ in tree.walk("")] == ["d", "l", "d/f", "d/g"]
    assert tree.get("d/f") is tree.get("d/g")
    assert tree.scoped("l") == "d/f" and sorted(tree.glob("*/?")) == ["d/f", "d/g"]


@pytest.mark.parametrize("compress", ["gzip", "bz2", "lzma"])
def test_compressed_contexts_are_indexed(compress: str) -> None:
    """dockerd takes a context tar gzip, bzip2 or xz compressed (docker-py's gzip=True,
    any client's own compression)."""
    import importlib

    raw = _tar([_file("Dockerfile")]).getvalue()
    tree = index(io.BytesIO(importlib.import_module(compress).compress(raw)))
    assert read_dockerfile(tree, "Dockerfile") == "x"


def test_a_context_that_is_no_tar_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        index(io.BytesIO(b"FROM scratch\n" * 100))
