"""Content store: blobs addressed by digest, verified before they become visible.

Layout under the store root::

    blobs/sha256/<hex>          committed, verified content (never modified)
    ingest/sha256-<hex>.partial bytes received so far for an unfinished download

An ingest hashes while it writes, checks size and digest, fsyncs and renames into
``blobs/``: a blob is either complete and verified or absent. A mismatch commits nothing
(DataLoss). A partial ingest left by an interrupted download is kept, re-hashed and
resumed from its length by the next ingest of the same digest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from services.core.logging import get_logger
from services.imagestore.locks import KeyedLocks
from services.imagestore.writeback import Writeback
from vocab import digest as digestmod
from vocab.errors import DataLoss, NotFound, ResourceExhausted

# fetch(offset) -> the blob's bytes from ``offset`` on.
Fetch = Callable[[int], Iterable[bytes]]
# progress(bytes_so_far) while an ingest runs.
Progress = Callable[[int], None]

_CHUNK = 1 << 20


class Truncated(DataLoss):
    """The stream ended early; the partial ingest is kept for a resume."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    def __init__(self, root: Path, min_free: int = 0) -> None:
        self.root = root
        self.min_free = min_free  # bytes a download must leave free on our filesystem
        self.blobs = root / "blobs"
        self.ingests = root / "ingest"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingests.mkdir(parents=True, exist_ok=True)
        self._locks = KeyedLocks()

    # -- reading -------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        algorithm, encoded = digestmod.validate(digest).split(":", 1)
        return self.blobs / algorithm / encoded

    def has(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def ids(self) -> list[str]:
        out = []
        for algo_dir in self.blobs.iterdir():
            out += [f"{algo_dir.name}:{p.name}" for p in algo_dir.iterdir()]
        return out

    # -- writing -------------------------------------------------------------------------

    def partial_path(self, digest: str) -> Path:
        algorithm, encoded = digestmod.validate(digest).split(":", 1)
        return self.ingests / f"{algorithm}-{encoded}.partial"

    def write(self, digest: str, data: bytes) -> None:
        """Commit ``data`` (already in memory: a manifest, a config) if it matches ``digest``."""
        self.ingest(digest, len(data), lambda offset: [data[offset:]])

    def ingest(self, digest: str, size: int, fetch: Fetch,
               progress: Progress | None = None) -> bool:
        """Download ``digest`` of ``size`` bytes via ``fetch`` unless already committed.

        Returns True when bytes were fetched, False when the blob was already present.
        Raises DataLoss when the content does not match; whatever ``fetch`` raises
        (Unavailable...) leaves the partial ingest in place for a later resume.
        """
        if size < 0:
            raise DataLoss(f"blob {digest}: negative size {size}")
        target = self.path(digest)
        with self._locks.hold(digest):
            if self.has(digest, size):
                return False
            partial = self.partial_path(digest)
            resuming = partial.exists() and partial.stat().st_size > 0
            self._check_space(digest, size - (partial.stat().st_size if resuming else 0))
            try:
                self._download(digest, size, fetch, partial, progress)
            except Truncated:
                raise
            except DataLoss:
                if not resuming:
                    raise
                # The kept bytes may be the culprit: start over once from zero.
                get_logger(digest=digest).warning("resumed ingest failed, restarting")
                partial.unlink(missing_ok=True)
                self._download(digest, size, fetch, partial, progress)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(partial, target)
            _fsync_dir(target.parent)
            return True

    def _check_space(self, digest: str, need: int) -> None:
        """Refuse to start a download that would leave less than ``min_free`` bytes free
        (the declared size is checked; more than declared is cut off while it streams)."""
        if not self.min_free:
            return
        st = os.statvfs(self.ingests)
        free = st.f_bavail * st.f_frsize
        if free - max(need, 0) < self.min_free:
            raise ResourceExhausted(
                f"no space for blob {digest}: it needs {need} more bytes, {free} are free on "
                f"the filesystem of {self.root} and {self.min_free} must stay free "
                "(imagestore.min_free_bytes)")

    def _download(self, digest: str, size: int, fetch: Fetch, partial: Path,
                  progress: Progress | None) -> None:
        log = get_logger(digest=digest)
        hasher = digestmod.hasher(digest)
        offset = 0
        if partial.exists():
            offset = partial.stat().st_size
            if offset > size:
                partial.unlink()
                offset = 0
            else:
                # Re-hash what we already have: the hash state is not persisted.
                with partial.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        hasher.update(chunk)
                log.info("resuming ingest", offset=offset)
        if progress and offset:
            progress(offset)
        written = offset
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        writeback = Writeback(fd, offset)  # so the fsync below finds little left to write
        try:
            if offset < size or size == 0:
                for chunk in fetch(offset):
                    if not chunk:
                        continue
                    written += len(chunk)
                    if written > size:
                        raise DataLoss(f"blob {digest}: more than the expected {size} bytes")
                    hasher.update(chunk)
                    os.write(fd, chunk)
                    writeback.wrote(len(chunk))
                    if progress:
                        progress(written)
            os.fsync(fd)
        except DataLoss:
            os.close(fd)
            partial.unlink(missing_ok=True)
            raise
        except BaseException:
            os.close(fd)
            if written == 0:
                partial.unlink(missing_ok=True)  # nothing to resume
            raise
        os.close(fd)
        if written == 0 and size:
            partial.unlink(missing_ok=True)
        if written < size:
            # Keep the partial: a later pull resumes from here.
            raise Truncated(f"blob {digest}: truncated, got {written} of {size} bytes")
        actual = f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"
        if actual != digest:
            partial.unlink(missing_ok=True)
            raise DataLoss(f"digest mismatch for {digest}: got {actual}")

    # -- removing ------------------------------------------------------------------------

    def delete(self, digest: str) -> None:
        with self._locks.hold(digest):
            self.path(digest).unlink(missing_ok=True)
            self.partial_path(digest).unlink(missing_ok=True)

