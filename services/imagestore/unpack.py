"""Apply one layer tar (gzip, zstd or plain; detected by magic bytes) onto an empty
snapshot directory, in the overlayfs form (SPECS.md §2):

* ``.wh.NAME`` becomes a 0:0 character device NAME (overlayfs whiteout), owned by the
  entry's uid/gid; ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its directory, so
  only lower layers are hidden and entries of this layer survive whatever the order;
  other ``.wh..wh.*`` names are metadata and are not written.
* Names are cleaned and contained: ``..`` and absolute names are clamped at the root, and
  parent directories are resolved inside the root, following this layer's symlinks the way
  openat2(RESOLVE_IN_ROOT) would, so no entry is ever written outside the snapshot.
  Symlinks themselves are written verbatim and never followed for the final component.
* Hardlinks point inside the root (or are copied up from a lower snapshot when the target
  is not in this layer); never to directories.
* Metadata order: lchown, xattrs, chmod (after chown so setuid survives), times;
  directory times after the whole layer.
* The decompressed stream is hashed and compared with the diff ID (DataLoss otherwise).
  Everything streams; a layer is never held in memory (at most 16 MiB of small files wait
  for a writer thread, and 8 MiB of decoded bytes for the parser).
* Threads: one decodes and hashes ahead of the tar parser; two create the small regular
  files (one per directory at a time). Only regular files are handed over, and the parser
  waits for them before anything that could meet them (see ``_Writers``).

The caller unpacks into a temp directory and discards it on any error.
"""

from __future__ import annotations

import collections
import errno
import gzip
import io
import os
import posixpath
import queue
import shutil
import stat
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import zstandard
from zlib_ng import gzip_ng, zlib_ng

from services.core import inroot
from services.core.logging import get_logger
from services.imagestore.writeback import Writeback
from vocab import digest as digestmod
from vocab.errors import DataLoss, InvalidArgument

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
GZIP_MAGIC = b"\x1f\x8b\x08"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# What a corrupt or truncated gzip stream raises on read (zstd: zstandard.ZstdError).
_ZLIB_NG_ERROR: type[Exception] = zlib_ng.error  # type: ignore[assignment]  # stubbed as an instance
GZIP_ERRORS: tuple[type[Exception], ...] = (EOFError, zlib.error, _ZLIB_NG_ERROR,
                                            gzip.BadGzipFile)
_CHUNK = 1 << 20


# -- decompression and hashing ----------------------------------------------------------


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def decompress(raw: BinaryIO) -> Readable:
    """The uncompressed view of ``raw``, by its magic bytes (not its media type)."""
    buffered: Any = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
    head = buffered.peek(4)[:4]
    if head.startswith(GZIP_MAGIC):
        # zlib-ng inflates the same streams ~1.5x faster than the stdlib's zlib (a 300 MB
        # Debian layer tar: 0.76 s vs 1.18 s with its sha256 here), CPU that the file
        # writes of the same unpack need on a 2-core host.
        return gzip_ng.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[no-untyped-call]
    if head.startswith(ZSTD_MAGIC):
        reader: Readable = zstandard.ZstdDecompressor().stream_reader(buffered)
        return reader
    return buffered  # type: ignore[no-any-return]


class _DecodeAhead(io.RawIOBase):
    """The decompressed stream, hashed; decoded on a thread a few chunks ahead of the reader.

    inflate, zstd and sha256 release the GIL, so decoding runs on the other core while
    the reader parses the tar and the kernel creates its files (on ext4, ~0.3 ms per new
    inode here): a 90 MB gzip layer decodes in ~1 s that is then off the unpack's path.
    Decoder errors become DataLoss, raised in the reader.
    """

    def __init__(self, inner: Readable, diff_id: str, depth: int = 8) -> None:
        super().__init__()
        self.hasher = digestmod.hasher(diff_id)
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(depth)
        self._stop = threading.Event()
        self._buf = b""
        self._pos = 0  # in _buf
        self._offset = 0  # in the decoded stream
        self._eof = False
        self._thread = threading.Thread(target=self._decode, args=(inner,),
                                        name="layer-decode", daemon=True)
        self._thread.start()

    def _decode(self, inner: Readable) -> None:
        try:
            while not self._stop.is_set():
                data = _read_decoded(inner, _CHUNK)
                if not data:
                    self._put(None)
                    return
                self.hasher.update(data)
                self._put(data)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            self._put(exc)

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def view(self, size: int) -> memoryview:
        """At most ``size`` bytes, without a copy (a view of one decoded chunk: short at a
        chunk's end); empty at the end of the stream."""
        if self._pos >= len(self._buf):
            if self._eof:
                return memoryview(b"")
            item = self._queue.get()
            if item is None or isinstance(item, BaseException):
                self._eof = True
                if item is None:
                    return memoryview(b"")
                raise item
            self._buf, self._pos = item, 0
        out = memoryview(self._buf)[self._pos:self._pos + max(size, 0)]
        self._pos += len(out)
        self._offset += len(out)
        return out

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes, fewer only at the end of the stream (tarfile reads a header or a
        long name with one read); with no size, the rest of the current chunk."""
        if size is None or size < 0:
            return bytes(self.view(len(self._buf)))
        first = self.view(size)
        if len(first) == size or not first:
            # A whole chunk goes on as it is, without a copy.
            return self._buf if len(first) == len(self._buf) else bytes(first)
        parts, got = [first], len(first)
        while 0 < got < size and (more := self.view(size - got)):
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._offset

    def seekable(self) -> bool:
        return False  # forward only, as a stream

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Forward to ``offset`` (tarfile skips the data of entries not read, and padding)
        by reading past the bytes in between; a tar whose sizes would seek backwards is
        refused, as tarfile's own stream mode refuses it."""
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only absolute seeks")
        if offset < self._offset:
            raise tarfile.StreamError("seeking backwards is not allowed")
        while self._offset < offset and self.view(offset - self._offset):
            pass
        return self._offset

    def drain(self) -> None:
        while self.view(_CHUNK):
            pass

    def close(self) -> None:
        """Stop the decoder; it may first finish the read it is in (a growing download's
        next bytes, or its end)."""
        self._stop.set()
        self._thread.join()
        super().close()


def _read_decoded(inner: Readable, size: int) -> bytes:
    try:
        return inner.read(size)
    except GZIP_ERRORS as exc:
        raise DataLoss(f"corrupt or truncated layer: {exc}") from None
    except Exception as exc:
        if isinstance(exc, zstandard.ZstdError):
            raise DataLoss(f"corrupt zstd layer: {exc}") from None
        raise


def unpack(blob: BinaryIO, dest: Path, diff_id: str, lowers: Sequence[Path] = (),
           lowers_ready: Callable[[], None] | None = None) -> int:
    """Apply the layer in ``blob`` onto the empty directory ``dest``; returns the layer's
    size (bytes of regular files). ``lowers`` are the parent snapshots, top first (only
    used to copy up hardlink targets that live in a lower layer). ``lowers_ready``, when
    given, is called before the lowers are first looked into and returns once they are all
    committed (a pull unpacks a layer while the ones below it may still be unpacking)."""
    digestmod.validate(diff_id)
    applier = _Applier(dest, lowers, lowers_ready)
    try:
        reader = _DecodeAhead(decompress(blob), diff_id)
    except BaseException:
        applier.close()
        raise
    try:
        # "r:" over the decoded stream, which seeks forward only (as "r|" does) but hands
        # tarfile whole reads without its 10 KiB buffer between (a copy or three per byte).
        with tarfile.open(fileobj=reader, mode="r:", encoding="utf-8",
                          errors="surrogateescape") as tar:
            for member in tar:
                applier.entry(tar, member)
        reader.drain()  # the diff ID covers the tar's trailing padding too
        applier.finish()
    except tarfile.TarError as exc:
        raise DataLoss(f"invalid or truncated layer tar: {exc}") from None
    finally:
        # Both threads are done before the caller closes the blob or discards the tree.
        applier.close()
        reader.close()
    actual = f"{diff_id.split(':', 1)[0]}:{reader.hasher.hexdigest()}"
    if actual != diff_id:
        raise DataLoss(f"layer diff ID mismatch: expected {diff_id}, got {actual}")
    return applier.size


# -- path resolution -----------------------------------------------------------------------


def clean_name(name: str) -> str:
    """The entry name cleaned and contained: '../../x' and '/x' both become 'x'."""
    return posixpath.normpath("/" + name).lstrip("/")


def resolve_dir(root: str, rel: str, create: bool,
                writers: _Writers | None = None) -> str | None:
    """Real path of directory ``rel`` inside ``root``, following symlinks scoped to the root
    (services/core/inroot.py: absolute targets restart at the root, '..' stops at it).
    Missing components are made 0755 when ``create``; otherwise None is returned for a
    missing one. A component that ``writers`` still has to create is waited for first (it
    is a file: an error below)."""
    on_step = writers.wait_for if writers is not None and writers.pending else None
    try:
        return inroot.dir_in_root(root, rel, make=create, mode=0o755, on_step=on_step)
    except InvalidArgument:
        raise InvalidArgument(f"layer path {rel!r}: too many levels of symlinks") from None
    except FileNotFoundError:
        return None
    except NotADirectoryError as e:
        if not create:
            return None
        name = os.path.basename(e.filename or rel)
        raise InvalidArgument(f"layer path {rel!r}: {name!r} is not a directory") from None


def _is_whiteout_device(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _remove(path: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# -- applying entries ----------------------------------------------------------------------


class _Writers:
    """Regular files and symlinks created on a few threads while the tar is parsed on.

    Creating an inode is the biggest cost of a layer of many small files, and it is kernel
    time (on this VM's ext4, ~0.3 ms per file right after other files were deleted); it
    runs in parallel across directories. The applier hands over new files only, with their
    bytes, and calls ``flush`` before anything that could meet a file still being written:
    a removal or replacement (so no parent directory can become a symlink under a pending
    write), a hardlink, a whiteout, the same name twice, and the end.
    """

    # Inode creation mostly waits in the kernel (ext4's journal, a busy disk): on this
    # 2-core VM a Debian layer (6,700 entries) unpacked in 6.1 s / 9.4 s with 4 writers
    # against 9.1 s / 12.7 s with 2 and 8.4 s / 11.0 s with 8 (two alternating rounds, a
    # loaded host); whole pulls A/B'd later on that host differed within their noise.
    THREADS = 4
    MAX_BYTES = 16 << 20  # of file data waiting in memory for a writer

    def __init__(self, create: Callable[[str, list[bytes], tarfile.TarInfo], None]) -> None:
        self._create = create
        # One thread per directory: two writers in one directory only contend for it.
        self._pools = [ThreadPoolExecutor(1, thread_name_prefix="layer-write")
                       for _ in range(self.THREADS)]
        self._queued: collections.deque[tuple[Future[None], int]] = collections.deque()
        self._bytes = 0
        self.pending: set[str] = set()

    def submit(self, parent: str, path: str, chunks: list[bytes], m: tarfile.TarInfo) -> None:
        pool = self._pools[hash(parent) % len(self._pools)]
        self._queued.append((pool.submit(self._create, path, chunks, m), m.size))
        self._bytes += m.size
        self.pending.add(path)
        while self._bytes > self.MAX_BYTES or len(self._queued) > 256:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        future, size = self._queued.popleft()
        self._bytes -= size
        future.result()  # a writer's error surfaces here, in the parsing thread

    def wait_for(self, path: str) -> None:
        """Let ``path`` land first if it is still to be written."""
        if path in self.pending:
            self.flush()

    def flush(self) -> None:
        while self._queued:
            self._wait_oldest()
        self.pending.clear()

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)


class _Applier:
    def __init__(self, dest: Path, lowers: Sequence[Path],
                 lowers_ready: Callable[[], None] | None = None) -> None:
        self.root = os.path.realpath(dest)
        self.lowers = [os.path.realpath(p) for p in lowers]
        self._lowers_ready = lowers_ready
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.size = 0
        # Resolved parent dirs by cleaned name: most entries share their parent with the
        # previous ones. Only a removal can change what a cached name resolves to (a dir
        # replaced by a symlink is removed first), so every removal clears it.
        self._parents: dict[str, str] = {}
        self._replaced_since = False  # an entry replaced another: see finish()
        self.log = get_logger(snapshot=self.root)
        self.writers = _Writers(self._create_file)

    def finish(self) -> None:
        self.writers.flush()
        # Directory times last: creating children changed them.
        for path, m in reversed(self.dirs):
            if self._replaced_since and not self._still_there(path):
                continue
            self._times(path, m)

    def _still_there(self, path: str) -> bool:
        """Whether the directory made at ``path`` is still reached by that path: a later
        entry may have replaced it, or a parent, by a file (utime would fail) or by a
        symlink (utime would follow it, out of the snapshot). Found by fuzzing."""
        try:
            return resolve_dir(self.root, os.path.relpath(path, self.root), False) == path
        except InvalidArgument:  # a symlink loop now: not our directory any more
            return False

    def close(self) -> None:
        self.writers.close()

    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = clean_name(m.name)
        if not name:
            return  # the root itself
        if name != posixpath.normpath(m.name.lstrip("/")):
            self.log.warning("layer entry name contained in the root", entry=m.name)
        parent_rel, base = posixpath.split(name)
        parent = self._parents.get(parent_rel)
        if parent is None:
            parent = resolve_dir(self.root, parent_rel, create=True, writers=self.writers)
            assert parent is not None
            self._parents[parent_rel] = parent
        if base.startswith(WHITEOUT_PREFIX):
            self.writers.flush()
            self._whiteout(parent, base, m)
            return
        path = os.path.join(parent, base)
        if path in self.writers.pending:
            self.writers.flush()  # the same name again: let the first one land
        try:
            existing: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            existing = None
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            self.writers.flush()
            _remove(path, existing)  # replace; two dirs merge instead
            self._parents.clear()
            self._replaced_since = True
            existing = None
        if m.isdir():
            if existing is None:
                os.mkdir(path, 0o700)
        elif m.isreg():
            self._write_file(tar, m, path)
            return  # metadata set through the open file
        elif m.issym():
            # A leaf like a regular file, and as costly to create (an inode): made on a
            # writer thread too. A later entry whose path goes through it waits for it
            # (``pending``), as for a file.
            self.writers.submit(parent, path, [], m)
            return
        elif m.islnk():
            self.writers.flush()
            self._hardlink(m, path)
            return  # the inode keeps its target's metadata
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            except PermissionError:
                self.log.warning("skipping device node: not permitted", entry=m.name)
                return
        elif m.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise InvalidArgument(f"layer entry {m.name!r}: unsupported tar type {m.type!r}")
        self._metadata(path, m)

    def _whiteout(self, parent: str, base: str, m: tarfile.TarInfo) -> None:
        if base == OPAQUE_WHITEOUT:
            os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other whiteout metadata: never materialised
        target = base[len(WHITEOUT_PREFIX):]
        if not target or target in (".", ".."):
            raise InvalidArgument(f"layer entry {m.name!r}: invalid whiteout")
        path = os.path.join(parent, target)
        if os.path.lexists(path):
            return  # whiteouts only hide lower layers, never this layer's own entries
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        os.chown(path, m.uid, m.gid, follow_symlinks=False)

    def _write_file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> None:
        self.size += m.size
        if m.sparse is None and m.size <= _CHUNK:
            self.writers.submit(os.path.dirname(path), path, [self._data(tar, m)], m)
            return
        # Big or sparse: written here as it is read, never held in memory whole, and its
        # write-out started as it goes (the snapshot's syncfs then finds little to do).
        fd = self._open_new(path)
        writeback = Writeback(fd)
        try:
            if m.sparse is not None:  # GNU sparse: let tarfile expand the holes
                src = tar.extractfile(m)
                assert src is not None
                while chunk := src.read(_CHUNK):
                    _write_all(fd, chunk)
            else:
                for view in self._data_chunks(tar, m):
                    _write_all(fd, view)
                    writeback.wrote(len(view))
            self._file_metadata(fd, m)
        finally:
            os.close(fd)

    def _create_file(self, path: str, chunks: list[bytes], m: tarfile.TarInfo) -> None:
        # On a writer thread: one open, writes, then metadata through the descriptor (no
        # path lookups), one close. A symlink: made and its metadata set by path.
        if m.issym():
            os.symlink(m.linkname, path)
            self._metadata(path, m)
            return
        fd = self._open_new(path)
        try:
            for chunk in chunks:
                _write_all(fd, chunk)
            self._file_metadata(fd, m)
        finally:
            os.close(fd)

    @staticmethod
    def _open_new(path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)

    @staticmethod
    def _data(tar: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
        """A small file's data, read at once from the decoded stream (_DecodeAhead)."""
        if m.size < 0:  # base-256 allows it; tarfile takes it
            raise tarfile.ReadError(f"negative size for {m.name!r}")
        stream: Any = tar.fileobj
        stream.seek(m.offset_data)
        data: bytes = stream.read(m.size)
        if len(data) != m.size:
            raise tarfile.ReadError("unexpected end of data")
        return data

    @staticmethod
    def _data_chunks(tar: tarfile.TarFile, m: tarfile.TarInfo) -> Iterator[memoryview]:
        # The data follows the header: views of the decoded chunks themselves, not copies
        # (tarfile's stream mode copied each byte three times in 10 KiB reads; a layer of
        # one 40 MiB file spent ~25 ms of its parsing thread, holding the GIL, on it).
        stream: Any = tar.fileobj
        stream.seek(m.offset_data)
        left = m.size
        while left > 0:
            chunk = stream.view(min(left, _CHUNK))
            if not chunk:
                raise tarfile.ReadError("unexpected end of data")
            yield chunk
            left -= len(chunk)

    def _file_metadata(self, fd: int, m: tarfile.TarInfo) -> None:
        os.fchown(fd, m.uid, m.gid)
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                self._setxattr(fd, key[len("SCHILY.xattr."):], value, m)
        os.fchmod(fd, m.mode & 0o7777)  # after chown: chown clears setuid
        self._times(fd, m)

    def _hardlink(self, m: tarfile.TarInfo, path: str) -> None:
        target = clean_name(m.linkname)
        if not target:
            raise InvalidArgument(f"layer entry {m.name!r}: hardlink to the root")
        t_parent, t_base = posixpath.split(target)
        for i, root in enumerate([self.root, *self.lowers]):
            if i == 1 and self._lowers_ready is not None:
                # Not in this layer: the lowers decide, so they must all be there (one
                # missing would let a deeper layer's file stand for a replaced one).
                self._lowers_ready()
                self._lowers_ready = None
            parent = resolve_dir(root, t_parent, create=False)
            if parent is None:
                continue
            src = os.path.join(parent, t_base)
            try:
                st = os.lstat(src)
            except FileNotFoundError:
                continue
            if _is_whiteout_device(st):
                break  # deleted in an upper layer
            if stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"layer entry {m.name!r}: hardlink to a directory")
            if i == 0:
                os.link(src, path, follow_symlinks=False)
            else:
                self._copy_up(src, st, path)
            return
        raise InvalidArgument(f"layer entry {m.name!r}: hardlink target {m.linkname!r} "
                              "not found in the image")

    def _copy_up(self, src: str, st: os.stat_result, path: str) -> None:
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), path)
        else:
            shutil.copy2(src, path, follow_symlinks=False)
        os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))

    def _metadata(self, path: str, m: tarfile.TarInfo) -> None:
        os.chown(path, m.uid, m.gid, follow_symlinks=False)
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                self._setxattr(path, key[len("SCHILY.xattr."):], value, m)
        if not m.issym():
            os.chmod(path, m.mode & 0o7777)  # after chown: chown clears setuid
        if m.isdir():
            self.dirs.append((path, m))
        else:
            self._times(path, m)

    def _setxattr(self, path: str | int, key: str, value: str, m: tarfile.TarInfo) -> None:
        if key.startswith(("trusted.overlay.", "user.overlay.")):
            # overlayfs's own namespace (opaque, redirect, metacopy): only we set it.
            self.log.warning("ignoring overlay xattr from layer", entry=m.name, xattr=key)
            return
        try:
            data = value.encode("utf-8", "surrogateescape")
            if isinstance(path, int):
                os.setxattr(path, key, data)  # an open file: nothing to follow
            else:
                os.setxattr(path, key, data, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return
            if exc.errno == errno.EPERM and key.startswith("user.") and not m.isreg():
                return
            raise

    @staticmethod
    def _times(path: str | int, m: tarfile.TarInfo) -> None:
        mtime = int(float(m.mtime) * 1e9)
        atime = int(float(m.pax_headers.get("atime", m.mtime)) * 1e9)
        if isinstance(path, int):
            os.utime(path, ns=(atime, mtime))
        else:
            os.utime(path, ns=(atime, mtime), follow_symlinks=False)
