"""The build context: received as a tar, unpacked into a private directory, trimmed by
.dockerignore, and read for COPY/ADD sources without ever leaving it.

Unpacking keeps symlinks as symlinks (whatever they point at) and refuses names that
climb out; device files are dropped. Sources are found relative to the context root with
Docker's globs (``*`` and ``?`` match dot files too); a symlink named as a source is
followed, but only inside the context (an absolute target or ``..`` stops at its root,
like Docker's FollowSymlinkInScope); symlinks inside copied directories stay symlinks.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import IO

from services.core.scoped import resolve as scoped_resolve
from vocab.dockerignore import Ignore
from vocab.errors import InvalidArgument, NotFound


def member_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "tar" filter for where a member may land (not absolute, not through a
    link out of ``dest``), but the member's mode kept whole: a context file's setuid bit
    or group write bit is the user's, and Docker copies it."""
    if member.isdev():
        return None
    return tarfile.tar_filter(member, dest).replace(mode=member.mode, deep=False)


def unpack(src: IO[bytes], root: str) -> None:
    """The context tar (plain, gzip, bzip2 or xz: what dockerd accepts) into ``root``."""
    try:
        with tarfile.open(fileobj=src, mode="r|*") as tar:
            tar.extractall(root, filter=member_filter)
    except tarfile.FilterError as exc:
        raise InvalidArgument(f"refusing the build context: {exc}") from None
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile, lzma.LZMAError) as exc:
        raise InvalidArgument(f"the build context is not a valid tar: {exc}") from None


def read_dockerfile(root: str, name: str) -> str:
    rel = scoped(root, name or "Dockerfile")
    path = os.path.join(root, rel)
    if not os.path.isfile(path):
        raise InvalidArgument(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}")
    with open(path, "rb") as f:
        return f.read(16 << 20).decode("utf-8", "replace")


def apply_dockerignore(root: str) -> None:
    """Remove what .dockerignore leaves out (the Dockerfile was read before)."""
    path = os.path.join(root, ".dockerignore")
    if not os.path.isfile(path) or os.path.islink(path):
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        ignore = Ignore(f.read())
    if not ignore.patterns:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        for name in list(dirnames):
            rel = posixpath.join(rel_dir, name)
            if ignore.ignored(rel) and not ignore.may_include_under(rel):
                shutil.rmtree(os.path.join(dirpath, name))
                dirnames.remove(name)
        for name in filenames:
            if ignore.ignored(posixpath.join(rel_dir, name)):
                os.unlink(os.path.join(dirpath, name))
    # Directories ignored whose contents an exception kept stay; emptied ones go.
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        rel = os.path.relpath(dirpath, root)
        if rel != "." and ignore.ignored(rel) and not os.listdir(dirpath):
            os.rmdir(dirpath)


def scoped(root: str, path: str, follow_last: bool = True) -> str:
    """``path`` resolved inside ``root`` (symlinks followed, never out): the real path
    relative to ``root`` ("" for the root itself)."""
    def readlink(parts: list[str]) -> str | None:
        real = os.path.join(root, *parts)
        return os.readlink(real) if os.path.islink(real) else None

    return "/".join(scoped_resolve(path, readlink, follow_last))


@dataclass
class Source:
    rel: str  # real path relative to the context (or source) root
    is_dir: bool
    # The last name as the pattern matched it: a symlink's own name, not its target's
    # (Docker copies a linked file's content under the link's name).
    name: str = ""

    @property
    def basename(self) -> str:
        return self.name or posixpath.basename(self.rel)


def find_sources(root: str, pattern: str, what: str) -> list[Source]:
    """The paths ``pattern`` names under ``root`` (a glob, or a plain path)."""
    clean = posixpath.normpath("/" + pattern)
    if not pattern.startswith("/") and posixpath.normpath(pattern).split("/")[0] == "..":
        raise InvalidArgument(f"forbidden path outside the build context: {pattern} ()")
    rel = clean.lstrip("/")
    if any(c in rel for c in "*?["):
        hits = sorted(glob.glob(os.path.join(glob.escape(root), rel), include_hidden=True))
        rels = [os.path.relpath(h, root) for h in hits]
    else:
        rels = [rel] if os.path.lexists(os.path.join(root, rel)) or rel == "" else []
    out = []
    for r in rels:
        real = scoped(root, r)
        path = os.path.join(root, real)
        if not os.path.lexists(path):
            continue
        out.append(Source(real, os.path.isdir(path) and not os.path.islink(path),
                          posixpath.basename(r)))
    if not out:
        raise NotFound(f"{what} failed: file not found in build context or excluded by "
                       f".dockerignore: stat {pattern}: file does not exist")
    return out


class SourceTar:
    """Writes sources into one tar named relative to the destination, and hashes what
    Docker's cache counts (names, modes, owners, link targets, bytes; not mtimes)."""

    def __init__(self, out: IO[bytes], owner: tuple[int, int] | None) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.owner = owner or (0, 0)  # context files belong to root unless --chown
        self.hash = hashlib.sha256()
        self.root_written = False

    def _info(self, path: str, arc: str) -> tarfile.TarInfo:
        info = self.tar.gettarinfo(path, arc)
        info.uid, info.gid = self.owner
        info.uname = info.gname = ""
        self.hash.update(f"{arc}\0{info.type!r}\0{info.mode}\0{info.uid}:{info.gid}\0"
                         f"{info.linkname}\0{info.size}\0".encode())
        return info

    def _add(self, path: str, arc: str) -> None:
        info = self._info(path, arc)
        if info.isreg():
            with open(path, "rb") as f:
                data = _Hashing(f, self.hash)
                self.tar.addfile(info, data)
        else:
            self.tar.addfile(info)

    def add_file(self, root: str, rel: str, name: str) -> None:
        self._add(os.path.join(root, rel), name)

    def add_dir(self, root: str, rel: str) -> None:
        """The directory's contents, named relative to it (its own entry as ".")."""
        base = os.path.join(root, rel) if rel else root
        if not self.root_written:
            self._add(base, ".")
            self.root_written = True
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                arc = os.path.relpath(path, base)
                st = os.lstat(path)
                if stat.S_ISSOCK(st.st_mode):
                    continue
                self._add(path, arc)

    def add_archive(self, path: str) -> None:
        """ADD of a local archive: its entries, extracted at the destination."""
        with open(path, "rb") as f:
            self.hash.update(hashlib.sha256(f.read()).digest())
        with tarfile.open(path, mode="r:*") as src:
            for m in src:
                if m.isdev():
                    continue
                m.uname = m.gname = ""
                self.tar.addfile(m, src.extractfile(m) if m.isreg() else None)

    def close(self) -> str:
        self.tar.close()
        return self.hash.hexdigest()


class _Hashing:
    def __init__(self, f: IO[bytes], hasher: hashlib._Hash) -> None:
        self.f = f
        self.hasher = hasher

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.hasher.update(data)
        return data


def is_archive(path: str) -> bool:
    """A local file ADD extracts: a tar, plain or gzip/bzip2/xz compressed."""
    if not os.path.isfile(path):
        return False
    try:
        with tarfile.open(path, mode="r:*") as tar:
            tar.next()
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False

