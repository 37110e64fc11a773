"""The registry service's shared blob cache: digest-addressed, size-limited (least recently
used goes first), with one upstream fetch per digest at a time (single flight).

Every image store that pulls through this registry service, on this host or over TCP,
shares it: the second engine to pull an image gets its layers from here, without a byte
from upstream. Only verified blobs enter: a fetch from offset 0 is checked against its
digest and size by the resolver while it is copied here, and is kept only when complete.
A resumed fetch (offset > 0) of a blob not cached goes straight upstream, uncached.

Blobs are shared across repositories by digest, as in containerd's content store: a
client that knows a digest gets the bytes another repository's pull brought in.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

from services.core import digest as digestmod
from services.core.logging import get_logger

CHUNK = 1 << 20


class BlobCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):  # a fetch cut short by a crash
            stale.unlink(missing_ok=True)
        self._guard = threading.Lock()
        self._flights: dict[str, threading.Lock] = {}
        self._evict_lock = threading.Lock()
        self.log = get_logger(component="blob-cache")

    def path(self, digest: str) -> Path:
        algo, _, hex_ = digest.partition(":")
        return self.root / f"{algo}-{hex_}"

    def fetch(self, digest: str, size: int, offset: int,
              upstream: Callable[[int], Iterator[bytes]]) -> Generator[bytes, None, None]:
        """The blob's bytes from ``offset``: from the cache, or from ``upstream(offset)``
        (which verifies from offset 0), keeping a complete copy."""
        digestmod.validate(digest)
        cached = self._open(digest)
        if cached is not None:
            return self._read(cached, offset)
        if offset > 0:
            return _closing(upstream(offset))
        return self._single_flight(digest, size, upstream)

    def _single_flight(self, digest: str, size: int, upstream: Callable[[int], Iterator[bytes]],
                       ) -> Generator[bytes, None, None]:
        with self._guard:
            flight = self._flights.setdefault(digest, threading.Lock())
        with flight:  # concurrent asks for one digest wait here for the first
            cached = self._open(digest)
            if cached is not None:
                yield from self._read(cached, 0)
                return
            yield from self._fill(digest, size, upstream(0))

    def _fill(self, digest: str, size: int, chunks: Iterator[bytes],
              ) -> Generator[bytes, None, None]:
        tmp = self.root / f".tmp-{digest.replace(':', '-')}-{threading.get_ident()}"
        complete = False
        try:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    yield chunk
                out.flush()
                os.fsync(out.fileno())
            complete = True  # the resolver raised on a mismatch before its last chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            if complete and (not size or tmp.stat().st_size == size):
                os.replace(tmp, self.path(digest))
                self._evict()
            else:
                tmp.unlink(missing_ok=True)

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
                if p.name.startswith(".tmp-"):
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


def _closing(chunks: Iterator[bytes]) -> Generator[bytes, None, None]:
    """Pass ``chunks`` through, closing them (the HTTP stream) when we are closed."""
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
