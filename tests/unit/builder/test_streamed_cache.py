"""The cache answered from the context's index (no file of the context made): what a
COPY's key counts (bytes, modes, owners as the context tar has them; not mtimes, as the
classic builder's checksums), what it ignores (files not copied, files .dockerignore
leaves out), and a miss after hits writing exactly the files it copies."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import IO, Any

from services.builder.build import Builder, Options
from services.builder.cache import Cache
from services.builder.context import apply_dockerignore, index, read_dockerfile
from tests.unit.builder.test_build import FakeBackend

# name -> (bytes, mode, uid, mtime); a name ending in "/" is a directory.
Files = dict[str, tuple[bytes, int, int, int]]

BASE: Files = {
    "Dockerfile": (b"FROM busybox\nCOPY app/ /app/\nRUN echo built\nCOPY late.txt /\n",
                   0o644, 1000, 100),
    "app/": (b"", 0o755, 1000, 100),
    "app/main.py": (b"print('hi')\n", 0o644, 1000, 100),
    "app/tool": (b"#!/bin/sh\n", 0o755, 1000, 100),
    "app/cache.tmp": (b"scratch\n", 0o644, 1000, 100),
    "late.txt": (b"0\n", 0o644, 1000, 100),
    "notes.txt": (b"not copied\n", 0o644, 1000, 100),
    ".dockerignore": (b"app/*.tmp\n", 0o644, 1000, 100),
}


class LayerBackend(FakeBackend):
    """The fake backend, keeping each AddFiles tar's members and bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.layers: list[dict[str, tuple[int, int, bytes]]] = []

    def add_files(self, parent: str, config: dict[str, Any], created_by: str, dest: str = "",
                  single_name: str = "", chown: str = "", chmod: str = "",
                  tar: IO[bytes] | None = None) -> str:
        members: dict[str, tuple[int, int, bytes]] = {}
        if tar is not None:
            raw = tar.read()
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r|") as t:
                for m in t:
                    data = t.extractfile(m)
                    members[m.name] = (m.mode, m.uid, data.read() if data else b"")
            tar = io.BytesIO(raw)
        self.layers.append(members)
        return super().add_files(parent, config, created_by, dest, single_name, chown,
                                 chmod, tar)


def _context(files: Files) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode, uid, mtime) in files.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, mtime
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _build(tmp_path: Path, backend: FakeBackend, files: Files) -> tuple[str, str]:
    """As the gateway builds: the context indexed from its tar, never unpacked."""
    tree = index(_context(files))
    dockerfile = read_dockerfile(tree, "Dockerfile")
    apply_dockerignore(tree)
    steps = Builder(backend, Cache(tmp_path / "cache.json"), tree, dockerfile,
                    Options()).build()
    out = []
    while True:
        try:
            out.append(next(steps))
        except StopIteration as done:
            return "".join(out), str(done.value)


def _changed(name: str, *, data: bytes | None = None, mode: int | None = None,
             uid: int | None = None, mtime: int | None = None) -> Files:
    files = dict(BASE)
    old = files[name]
    files[name] = (old[0] if data is None else data, old[1] if mode is None else mode,
                   old[2] if uid is None else uid, old[3] if mtime is None else mtime)
    return files


def _cached_steps(out: str) -> int:
    return out.count(" ---> Using cache")


def test_a_copied_files_bytes_mode_or_owner_miss(tmp_path: Path) -> None:
    be = LayerBackend()
    _, first = _build(tmp_path, be, BASE)
    for change in (dict(data=b"print('bye')\n"), dict(mode=0o600), dict(uid=0)):
        out, image = _build(tmp_path, be, _changed("app/main.py", **change))  # type: ignore[arg-type]
        # COPY app/ misses, so every step after it runs again.
        assert _cached_steps(out) == 0 and image != first, change
        assert "Step 3/4 : RUN echo built\n ---> Running in" in out


def test_an_mtime_alone_hits_as_in_dockers_classic_builder(tmp_path: Path) -> None:
    be = LayerBackend()
    _, first = _build(tmp_path, be, BASE)
    out, image = _build(tmp_path, be, _changed("app/main.py", mtime=12345))
    assert _cached_steps(out) == 3 and image == first


def test_files_not_copied_or_ignored_do_not_count(tmp_path: Path) -> None:
    be = LayerBackend()
    _, first = _build(tmp_path, be, BASE)
    for name in ("notes.txt", "app/cache.tmp"):
        out, image = _build(tmp_path, be, _changed(name, data=b"changed\n", mode=0o600,
                                                   uid=7))
        assert _cached_steps(out) == 3 and image == first, name
    added = dict(BASE, **{"more.txt": (b"new\n", 0o644, 1000, 100)})
    assert _cached_steps(_build(tmp_path, be, added)[0]) == 3


def test_a_miss_after_hits_writes_the_files_it_copies(tmp_path: Path) -> None:
    be = LayerBackend()
    _build(tmp_path, be, BASE)
    assert set(be.layers[0]) == {".", "main.py", "tool"}  # app/ (no cache.tmp)
    assert be.layers[0]["tool"] == (0o755, 0, b"#!/bin/sh\n")  # owner 0:0, mode kept
    assert be.layers[1] == {"late.txt": (0o644, 0, b"0\n")}
    out, _ = _build(tmp_path, be, _changed("late.txt", data=b"1\n"))
    assert _cached_steps(out) == 2  # COPY app/ and RUN; the last COPY misses
    assert len(be.layers) == 3 and be.layers[2] == {"late.txt": (0o644, 0, b"1\n")}


def test_a_large_context_spills_to_one_file_and_reads_back(tmp_path: Path) -> None:
    from services.builder.tree import Blobs, Tree

    blobs = Blobs(str(tmp_path), limit=1000)
    big = bytes(range(256)) * 40
    files = dict(BASE, **{"late.txt": (big, 0o644, 1000, 100)})
    tree = Tree.from_tar(_context(files), blobs)
    entry = tree.get("late.txt")
    assert entry is not None
    with tree.open(entry) as f:
        assert f.read() == big
    blobs.close()
