"""The registry service's shared blob cache: digest-addressed, size-limited (least recently
used goes first), with one upstream fetch per digest at a time (single flight).

Every image store that pulls through this registry service, on this host or over TCP,
shares it: the second engine to pull an image gets its layers from here, without a byte
from upstream. Only verified blobs enter: bytes are appended to ``.partial-<digest>``
before they go to the client, hashed, and the file is renamed in once digest and size
check out.

A fetch cut short (the client left, upstream dropped, the service was killed) keeps its
partial file, so the next fetch of that digest, from any offset up to what the partial
holds, sends the partial's bytes and asks upstream only for the rest (``Range``), also
after a restart. A fetch from beyond the partial passes through uncached.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

from services.core.logging import get_logger
from vocab import digest as digestmod
from vocab.errors import DataLoss

CHUNK = 1 << 20
PARTIAL_MAX_AGE = 24 * 3600.0  # seconds an unfinished download is kept for a resume


class BlobCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):  # temp names of older versions
            stale.unlink(missing_ok=True)
        now = time.time()
        for old in self.root.glob(".partial-*"):  # nobody resumed it for a day
            with contextlib.suppress(FileNotFoundError):
                if now - old.stat().st_mtime > PARTIAL_MAX_AGE:
                    old.unlink()
        self._guard = threading.Lock()
        self._flights: dict[str, threading.Lock] = {}
        self._evict_lock = threading.Lock()
        self.log = get_logger(component="blob-cache")

    def path(self, digest: str) -> Path:
        algo, _, hex_ = digest.partition(":")
        return self.root / f"{algo}-{hex_}"

    def partial_path(self, digest: str) -> Path:
        algo, _, hex_ = digest.partition(":")
        return self.root / f".partial-{algo}-{hex_}"

    def fetch(self, digest: str, size: int, offset: int,
              upstream: Callable[[int], Iterator[bytes]]) -> Generator[bytes, None, None]:
        """The blob's bytes from ``offset``: from the cache, or through a partial copy
        completed from ``upstream(start)`` (the blob's bytes from ``start``)."""
        digestmod.validate(digest)
        cached = self._open(digest)
        if cached is not None:
            return self._read(cached, offset)
        return self._single_flight(digest, size, offset, upstream)

    def _single_flight(self, digest: str, size: int, offset: int,
                       upstream: Callable[[int], Iterator[bytes]],
                       ) -> Generator[bytes, None, None]:
        with self._guard:
            flight = self._flights.setdefault(digest, threading.Lock())
        with flight:  # concurrent asks for one digest wait here for the first
            cached = self._open(digest)
            if cached is not None:
                yield from self._read(cached, offset)
                return
            partial = self.partial_path(digest)
            try:
                have = partial.stat().st_size
            except FileNotFoundError:
                have = 0
            if size and have > size:
                partial.unlink()
                have = 0
            if offset > have:
                # The bytes before the client's offset are missing here: fetching them
                # would cost upstream traffic the client does not need.
                yield from _closing(upstream(offset))
                return
            yield from self._fill(digest, size, offset, have, upstream)

    def _fill(self, digest: str, size: int, offset: int, have: int,
              upstream: Callable[[int], Iterator[bytes]]) -> Generator[bytes, None, None]:
        partial = self.partial_path(digest)
        # upstream(0) verifies the whole blob itself (the resolver); a blob completed
        # from a partial is hashed here, partial included.
        hasher = digestmod.hasher(digest) if have else None
        pos = 0
        if hasher is not None:
            self.log.info("resuming from partial", digest=digest, offset=have)
            with open(partial, "rb") as f:
                while pos < have and (chunk := f.read(min(CHUNK, have - pos))):
                    hasher.update(chunk)
                    if pos + len(chunk) > offset:
                        yield chunk[max(0, offset - pos):]
                    pos += len(chunk)
        chunks: Iterator[bytes] = iter(()) if size and pos == size else upstream(pos)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        try:
            for chunk in chunks:
                # In the file before the client has it: a restart resumes from here.
                _write_all(fd, chunk)
                if hasher is not None:
                    hasher.update(chunk)
                pos += len(chunk)
                yield chunk
            os.fsync(fd)
        except DataLoss:
            partial.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        got = digest if hasher is None else f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"
        if got != digest or (size and pos != size):
            partial.unlink(missing_ok=True)
            raise DataLoss(f"digest mismatch for {digest}: got {got} ({pos} bytes, "
                           f"resumed at {have})")
        os.replace(partial, self.path(digest))
        self._evict()

    def _open(self, digest: str) -> Path | None:
        path = self.path(digest)
        try:
            os.utime(path)  # recently used: evicted last
        except FileNotFoundError:
            return None
        return path

    @staticmethod
    def _read(path: Path, offset: int) -> Generator[bytes, None, None]:
        with open(path, "rb") as f:
            f.seek(offset)
            while chunk := f.read(CHUNK):
                yield chunk

    def _evict(self) -> None:
        """Drop least recently used blobs until the cache fits its limit."""
        if self.max_bytes <= 0:
            return
        with self._evict_lock:
            entries = []
            for p in self.root.iterdir():
                if p.name.startswith("."):  # partials: in use, or kept for a resume
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = p.stat()
                    entries.append((st.st_mtime, st.st_size, p))
            total = sum(e[1] for e in entries)
            for _mtime, nbytes, p in sorted(entries, key=lambda e: e[0]):
                if total <= self.max_bytes:
                    break
                p.unlink(missing_ok=True)
                total -= nbytes
                self.log.info("evicted", blob=p.name, bytes=nbytes)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _closing(chunks: Iterator[bytes]) -> Generator[bytes, None, None]:
    """Pass ``chunks`` through, closing them (the HTTP stream) when we are closed."""
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
