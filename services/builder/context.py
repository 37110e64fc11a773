"""The build context: received as a tar and indexed as it streams in (tree.py: names,
modes, owners, mtimes, link targets and content digests; the bytes kept aside, no file
made), trimmed by .dockerignore, and read for COPY/ADD sources without ever leaving it.

Indexing keeps symlinks as symlinks (whatever they point at) and refuses names that
climb out; device files are dropped. Sources are found relative to the context root with
Docker's globs (``*`` and ``?`` match dot files too); a symlink named as a source is
followed, but only inside the context (an absolute target or ``..`` stops at its root,
like Docker's FollowSymlinkInScope); symlinks inside copied directories stay symlinks.
A COPY's cache digest comes from the index; its layer's tar is written only on a miss.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from services.builder.tree import DIR, FILE, SYMLINK, Blobs, Entry, Tree
from vocab.dockerignore import Ignore
from vocab.errors import InvalidArgument, NotFound


def member_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "tar" filter for where a member may land (not absolute, not through a
    link out of ``dest``), but the member's mode kept whole: a context file's setuid bit
    or group write bit is the user's, and Docker copies it."""
    if member.isdev():
        return None
    return tarfile.tar_filter(member, dest).replace(mode=member.mode, deep=False)


def index(src: IO[bytes], blobs: Blobs | None = None) -> Tree:
    """The context tar (plain, gzip, bzip2 or xz: what dockerd accepts) indexed as it
    streams in (tree.py): nothing is written out but the files' bytes, in one place."""
    return Tree.from_tar(src, blobs)


def read_dockerfile(tree: Tree, name: str) -> str:
    entry = tree.get(tree.scoped(name or "Dockerfile"))
    if entry is None or entry.kind != FILE:
        raise InvalidArgument(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}")
    with tree.open(entry) as f:
        return f.read(16 << 20).decode("utf-8", "replace")


def apply_dockerignore(tree: Tree) -> None:
    """Leave out what .dockerignore leaves out (the Dockerfile was read before)."""
    entry = tree.get(".dockerignore")
    if entry is None or entry.kind != FILE:
        return
    with tree.open(entry) as f:
        ignore = Ignore(f.read().decode("utf-8", "replace"))
    if not ignore.patterns:
        return

    def trim(rel_dir: str, directory: Entry) -> None:
        for name in sorted(directory.children):
            child = directory.children[name]
            rel = posixpath.join(rel_dir, name)
            if child.kind == DIR:
                if ignore.ignored(rel) and not ignore.may_include_under(rel):
                    del directory.children[name]
                    continue
                trim(rel, child)
                # Directories ignored whose contents an exception kept stay; emptied
                # ones go.
                if ignore.ignored(rel) and not child.children:
                    del directory.children[name]
            elif ignore.ignored(rel):
                del directory.children[name]

    trim("", tree.root)


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


def find_sources(tree: Tree, pattern: str, what: str) -> list[Source]:
    """The paths ``pattern`` names in ``tree`` (a glob, or a plain path)."""
    clean = posixpath.normpath("/" + pattern)
    if not pattern.startswith("/") and posixpath.normpath(pattern).split("/")[0] == "..":
        raise InvalidArgument(f"forbidden path outside the build context: {pattern} ()")
    rel = clean.lstrip("/")
    if any(c in rel for c in "*?["):
        rels = sorted(tree.glob(rel))
    else:
        rels = [rel] if rel == "" or tree.get(tree.scoped(rel, follow_last=False)) else []
    out = []
    for r in rels:
        real = tree.scoped(r)
        entry = tree.get(real)
        if entry is None:
            continue
        out.append(Source(real, entry.kind == DIR, posixpath.basename(r)))
    if not out:
        raise NotFound(f"{what} failed: file not found in build context or excluded by "
                       f".dockerignore: stat {pattern}: file does not exist")
    return out


def is_archive(tree: Tree, rel: str) -> bool:
    """A local file ADD extracts: a tar, plain or gzip/bzip2/xz compressed."""
    entry = tree.get(rel)
    if entry is None or entry.kind != FILE:
        return False
    try:
        with tree.open(entry) as f, tarfile.open(fileobj=f, mode="r:*") as tar:
            tar.next()
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False


@dataclass
class _Item:
    arc: str  # the name in the layer's tar, relative to the destination
    entry: Entry
    archive: bool = False  # ADD of a local archive: its entries, extracted


class Sources:
    """What one COPY/ADD copies out of a tree, named relative to the destination: its
    cache digest is computed from the tree's index (no byte read again, nothing written),
    and the layer's tar is written only when the cache misses."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.items: list[_Item] = []
        self._root_written = False

    def add_file(self, rel: str, name: str) -> None:
        entry = self.tree.get(rel)
        assert entry is not None
        self.items.append(_Item(name, entry))

    def add_dir(self, rel: str) -> None:
        """The directory's contents, named relative to it (its own entry as ".")."""
        top = self.tree.get(rel)
        assert top is not None
        if not self._root_written:
            self.items.append(_Item(".", top))
            self._root_written = True
        self.items.extend(_Item(arc, entry) for arc, entry in self.tree.walk(rel))

    def add_archive(self, rel: str) -> None:
        entry = self.tree.get(rel)
        assert entry is not None
        self.items.append(_Item(posixpath.basename(rel), entry, archive=True))

    def _headers(self) -> Iterator[tuple[_Item, str, str]]:
        """Each item with its tar type and link name: a file met again under another
        name (a hardlink) is a link to its first name, as tarfile writes it."""
        first: dict[int, str] = {}
        for item in self.items:
            entry = item.entry
            if item.archive:
                yield item, "", ""
            elif entry.kind == FILE and entry.nlink > 1 and id(entry) in first \
                    and first[id(entry)] != item.arc:
                yield item, tarfile.LNKTYPE.decode(), first[id(entry)]
            else:
                if entry.kind == FILE and entry.nlink > 1:
                    first.setdefault(id(entry), item.arc)
                kind = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE,
                        SYMLINK: tarfile.SYMTYPE}[entry.kind].decode()
                yield item, kind, entry.linkname

    def digest(self) -> str:
        """What Docker's cache counts of the sources: names, types, modes, owners (as the
        context has them), link targets, sizes and bytes (as sha256); not mtimes, which
        the classic builder leaves out of its checksums."""
        hasher = hashlib.sha256()
        for item, kind, link in self._headers():
            entry = item.entry
            if item.archive:
                hasher.update(f"archive\0{self.tree.digest(entry)}\0".encode())
                continue
            size = entry.size if kind == tarfile.REGTYPE.decode() else 0
            content = self.tree.digest(entry) if size else ""
            hasher.update(f"{item.arc}\0{kind}\0{entry.mode:o}\0{entry.uid}:{entry.gid}\0"
                          f"{link}\0{size}\0{content}\0".encode())
        return hasher.hexdigest()

    def write(self, out: IO[bytes]) -> None:
        """The layer's tar: owner 0:0 (context files belong to root unless --chown),
        modes and mtimes as the sources have them."""
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for item, kind, link in self._headers():
                entry = item.entry
                if item.archive:
                    self._extract(tar, entry)
                    continue
                info = tarfile.TarInfo(item.arc)
                info.type, info.linkname = kind.encode(), link
                info.mode, info.mtime = entry.mode, entry.mtime
                info.uid = info.gid = 0
                if info.type == tarfile.REGTYPE:
                    info.size = entry.size
                    with self.tree.open(entry) as data:
                        tar.addfile(info, data)
                else:
                    tar.addfile(info)

    def _extract(self, tar: tarfile.TarFile, entry: Entry) -> None:
        """ADD of a local archive: its entries, extracted at the destination."""
        with self.tree.open(entry) as f, tarfile.open(fileobj=f, mode="r:*") as src:
            for m in src:
                if m.isdev():
                    continue
                m.uname = m.gname = ""
                tar.addfile(m, src.extractfile(m) if m.isreg() else None)
