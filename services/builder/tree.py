"""A file tree the builder reads COPY/ADD sources from, without it being on disk: the
build context indexed as its tar streams in (names, modes, owners, mtimes, link targets,
and each file's content digest, computed while reading), or a directory indexed by lstat
(what `COPY --from` and ADD of a URL read out into a scratch directory).

Why not unpack the context: most cached rebuilds copy nothing new, and the cache is
answered from what the index holds; creating every file of the context (one file
system call chain per file, costly on a busy disk) was most of a cached rebuild's time.
A file's bytes are kept in `Blobs` (memory, then one unlinked temp file) and read only
when a cache miss writes them into the layer's tar.

Names are indexed as tarfile's "tar" filter lets them land: a leading "/" dropped,
``..`` refused where it leaves the root, a member under a symlink that points outside
refused; symlinks are kept as symlinks whatever they point at; device files and FIFOs
are dropped; a hardlink is the same `Entry` under two names.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from services.core.scoped import resolve as scoped_resolve
from vocab.errors import InvalidArgument

FILE, DIR, SYMLINK = "file", "dir", "symlink"

# Context bytes kept in memory per build before they go to a temp file.
MEMORY_LIMIT = 32 << 20
_CHUNK = 1 << 20


class Blobs:
    """The context's file contents, appended as they stream in: in memory up to
    ``limit`` bytes, then in one unlinked temp file under ``spill_dir`` (one file for the
    whole context, never one per context file). Reads may come from several threads
    (stages build at once) once the appending is over."""

    def __init__(self, spill_dir: str | None = None, limit: int = MEMORY_LIMIT) -> None:
        self._mem = bytearray()
        self._file: IO[bytes] | None = None
        self._size = 0
        self._spill_dir = spill_dir
        self._limit = limit
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        if self._file is None and len(self._mem) + len(data) > self._limit:
            self._file = tempfile.TemporaryFile(dir=self._spill_dir)  # noqa: SIM115
            self._file.write(self._mem)
            self._mem = bytearray()
        if self._file is not None:
            self._file.write(data)
        else:
            self._mem += data
        self._size += len(data)

    def read(self, offset: int, size: int) -> bytes:
        if self._file is None:
            return bytes(self._mem[offset:offset + size])
        with self._lock:  # the writer's buffer out once, whichever stage reads first
            self._file.flush()
        return os.pread(self._file.fileno(), size, offset)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._mem = bytearray()


@dataclass(eq=False)
class Entry:
    """One file of a tree. A hardlink is the same object under another name."""

    kind: str  # FILE, DIR or SYMLINK
    mode: int  # permission bits with setuid/setgid/sticky (& 0o7777)
    uid: int
    gid: int
    mtime: float
    size: int = 0
    linkname: str = ""  # a symlink's target
    offset: int = -1  # a file's bytes in the tree's Blobs
    path: str = ""  # ... or on disk
    digest: str = ""  # sha256 of a file's bytes (computed on first use for a disk file)
    nlink: int = 1
    children: dict[str, Entry] = field(default_factory=dict)  # a directory's


def _refused(why: str) -> InvalidArgument:
    return InvalidArgument(f"refusing the build context: {why}")


def _invalid(why: object) -> InvalidArgument:
    return InvalidArgument(f"the build context is not a valid tar: {why}")


class Tree:
    def __init__(self, blobs: Blobs | None = None, root: Entry | None = None) -> None:
        self.blobs = blobs or Blobs()
        self.root = root or Entry(DIR, 0o755, os.getuid(), os.getgid(), time.time())
        self._digest_lock = threading.Lock()

    # ------------------------------------------------------------------ building

    @classmethod
    def from_tar(cls, src: IO[bytes], blobs: Blobs | None = None) -> Tree:
        """The context tar (plain, gzip, bzip2 or xz: what dockerd accepts) indexed, read
        once front to back."""
        tree = cls(blobs)
        try:
            with tarfile.open(fileobj=src, mode="r|*") as tar:
                for member in tar:
                    tree._add_member(tar, member)
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile,
                lzma.LZMAError) as exc:
            raise _invalid(exc) from None
        return tree

    @classmethod
    def from_dir(cls, root: str) -> Tree:
        """``root`` indexed by lstat (sockets, devices and FIFOs left out); file bytes
        are read from disk when needed."""
        st = os.stat(root)
        tree = cls(root=_disk_entry(root, st))
        links: dict[tuple[int, int], Entry] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            parent = tree.get("" if rel_dir == "." else rel_dir.replace(os.sep, "/"))
            if parent is None or parent.kind != DIR:
                continue
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                key = (st.st_dev, st.st_ino)
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in links:
                    parent.children[name] = links[key]
                    continue
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
                        or stat.S_ISLNK(st.st_mode)):
                    continue
                entry = _disk_entry(path, st)
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    links[key] = entry
                parent.children[name] = entry
        return tree

    def _add_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if member.isdev():
            return  # devices and FIFOs are not copied (as unpacking dropped them)
        name = posixpath.normpath(member.name.lstrip("/"))
        if name == "..":
            raise _refused(f"{member.name!r} is outside the context")
        if name.startswith("../"):
            raise _refused(f"{member.name!r} is outside the context")
        mode = member.mode & 0o7777
        if name == ".":
            if member.isdir():
                self.root.mode, self.root.mtime = mode, member.mtime
                self.root.uid, self.root.gid = member.uid, member.gid
            return
        dirname, base = posixpath.split(name)
        parent = self._make_dirs(dirname, member.name)
        old = parent.children.get(base)
        if member.isdir():
            entry = old if old is not None and old.kind == DIR else Entry(DIR, 0, 0, 0, 0)
            entry.mode, entry.uid, entry.gid, entry.mtime = (mode, member.uid, member.gid,
                                                             member.mtime)
        elif member.issym():
            entry = Entry(SYMLINK, 0o777, member.uid, member.gid, member.mtime,
                          linkname=member.linkname)
        elif member.islnk():
            entry = self._hardlink_target(member)
            entry.nlink += 1
        elif member.isreg():
            entry = Entry(FILE, mode, member.uid, member.gid, member.mtime,
                          size=member.size, offset=self.blobs.size)
            data = tar.extractfile(member)
            assert data is not None
            hasher = hashlib.sha256()
            while chunk := data.read(_CHUNK):
                hasher.update(chunk)
                self.blobs.append(chunk)
            entry.digest = hasher.hexdigest()
        else:
            return  # other types (GNU volume headers and the like) carry no file
        parent.children[base] = entry

    def _make_dirs(self, dirname: str, member: str) -> Entry:
        """The directory ``dirname`` names, made as extraction makes missing parents;
        through symlinks that stay inside (extraction writes through them), never out."""
        parts = self._real(dirname, member)
        entry = self.root
        for part in parts:
            child = entry.children.get(part)
            if child is None:
                child = Entry(DIR, 0o755, os.getuid(), os.getgid(), time.time())
                entry.children[part] = child
            elif child.kind != DIR:
                raise _invalid(f"{member!r}: {part} is not a directory")
            entry = child
        return entry

    def _real(self, path: str, member: str) -> list[str]:
        """``path``'s real components as the file system would resolve it (symlinks
        followed); a path that leaves the root is refused, as tarfile's filter does."""
        def escaped() -> None:
            raise _refused(f"{member!r} would land outside the context")

        return scoped_resolve(path, self.readlink, escaped=escaped)

    def _hardlink_target(self, member: tarfile.TarInfo) -> Entry:
        target = posixpath.normpath(member.linkname.lstrip("/"))
        dirname, base = posixpath.split(target)
        found = self.get("/".join([*self._real(dirname, member.name), base]))
        if found is None or found.kind == DIR:
            raise _invalid(f"{member.name!r}: hard link target {member.linkname!r} not "
                           "found before it")
        return found

    # ------------------------------------------------------------------ reading

    def get(self, rel: str) -> Entry | None:
        """The entry at ``rel`` (real names: no symlink followed)."""
        entry = self.root
        for part in rel.split("/"):
            if not part or part == ".":
                continue
            if entry.kind != DIR:
                return None
            child = entry.children.get(part)
            if child is None:
                return None
            entry = child
        return entry

    def readlink(self, parts: list[str]) -> str | None:
        entry = self.get("/".join(parts))
        return entry.linkname if entry is not None and entry.kind == SYMLINK else None

    def scoped(self, path: str, follow_last: bool = True) -> str:
        """``path`` resolved inside the tree (symlinks followed, never out): the real
        path relative to the root ("" for the root itself)."""
        return "/".join(scoped_resolve(path, self.readlink, follow_last))

    def remove(self, rel: str) -> None:
        dirname, base = posixpath.split(rel)
        parent = self.get(dirname)
        if parent is not None and parent.kind == DIR:
            parent.children.pop(base, None)

    def walk(self, rel: str) -> Iterator[tuple[str, Entry]]:
        """Everything under the directory ``rel``, named relative to it, in os.walk's
        order with each directory's names sorted (what the builder wrote before: the
        same layer tar, entry for entry); symlinked directories are not entered."""
        top = self.get(rel)
        if top is None or top.kind != DIR:
            return
        todo: list[tuple[str, Entry]] = [("", top)]
        while todo:
            prefix, entry = todo.pop(0)
            subdirs = []
            for name in sorted(entry.children):
                child = entry.children[name]
                arc = f"{prefix}{name}"
                yield arc, child
                if child.kind == DIR:
                    subdirs.append((arc + "/", child))
            todo[:0] = subdirs  # depth first, as os.walk goes into each in turn

    def glob(self, pattern: str) -> list[str]:
        """glob.glob's matches of ``pattern`` (relative, "/"-separated) with
        include_hidden: each element matched in its directory's listing; directories
        reached through symlinks inside the tree."""
        parts = [p for p in pattern.split("/") if p]
        found = [""]
        for n, part in enumerate(parts):
            last = n == len(parts) - 1
            nxt = []
            for prefix in found:
                if _magic(part):
                    entry = self.get(self.scoped(prefix))
                    if entry is None or entry.kind != DIR:
                        continue
                    for name in entry.children:
                        if fnmatch.fnmatchcase(name, part):
                            path = f"{prefix}/{name}" if prefix else name
                            if last or self._is_dir(path):
                                nxt.append(path)
                else:
                    path = f"{prefix}/{part}" if prefix else part
                    if (self.get(self.scoped(path, follow_last=False)) is not None
                            if last else self._is_dir(path)):
                        nxt.append(path)
            found = nxt
        return found

    def _is_dir(self, path: str) -> bool:
        entry = self.get(self.scoped(path))
        return entry is not None and entry.kind == DIR

    def digest(self, entry: Entry) -> str:
        """sha256 of a file's bytes."""
        if not entry.digest and entry.path:
            hasher = hashlib.sha256()
            with open(entry.path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    hasher.update(chunk)
            with self._digest_lock:
                entry.digest = hasher.hexdigest()
        return entry.digest

    def open(self, entry: Entry) -> IO[bytes]:
        """A file's bytes, readable and seekable."""
        if entry.path:
            return open(entry.path, "rb")  # noqa: SIM115 - the caller closes it
        return io.BufferedReader(_BlobReader(self.blobs, entry.offset, entry.size))


def _magic(part: str) -> bool:
    return any(c in part for c in "*?[")


def _disk_entry(path: str, st: os.stat_result) -> Entry:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return Entry(DIR, mode, st.st_uid, st.st_gid, st.st_mtime)
    if stat.S_ISLNK(st.st_mode):
        return Entry(SYMLINK, mode, st.st_uid, st.st_gid, st.st_mtime,
                     linkname=os.readlink(path))
    return Entry(FILE, mode, st.st_uid, st.st_gid, st.st_mtime, size=st.st_size,
                 path=path, nlink=st.st_nlink)


class _BlobReader(io.RawIOBase):
    """One file's bytes in Blobs, as a seekable raw file (tarfile reads ADD's archives
    with seeks)."""

    def __init__(self, blobs: Blobs, offset: int, size: int) -> None:
        self._blobs = blobs
        self._offset = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), self._size - self._pos))
        if n:
            data = self._blobs.read(self._offset + self._pos, n)
            b[:len(data)] = data
            n = len(data)
        self._pos += n
        return n
