"""glibc's heap tuned for services that stream large buffers (blobs through the registry
service and the image store), and given back once they are idle.

A blob moves as ~1 MiB ``bytes`` objects, each allocated and freed once. With glibc's
defaults the first ones are mmap'd (above the 128 KiB threshold), then the threshold grows
and they come from a thread's arena, whose top is trimmed back to the kernel as soon as
twice that lies free: every new chunk then faults its pages in again (and the kernel clears
them). A cold pull of 5 x 40 MiB spent ~0.25 CPU-s in page faults and madvise across the
two services, a fifth of their CPU. Fixed thresholds keep a few chunks' worth of pages in
an arena; two arenas at most (most allocations happen under the GIL anyway, one thread at
a time) keep what stays after a transfer small: after that pull the image store held
55 MB, against 69 MB with glibc's defaults and 94 MB with these thresholds and one arena
per thread. ``Busy`` also gives back the free holes (``malloc_trim``) when the last
transfer ends.

Elsewhere than glibc (musl) all of this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from types import TracebackType

_M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Larger than any buffer a transfer allocates (8 MiB Range parts, registry/ranges.py), so
# none is mmap'd and unmapped per chunk; below glibc's cap of 32 MiB.
MMAP_THRESHOLD = 16 << 20
# Free memory kept at the top of an arena: 8 chunks (16 and 128 MiB cost the same CPU and
# kept 60 and 100 MB more after a pull).
TRIM_THRESHOLD = 8 << 20
ARENAS = 2


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc


_LIBC = _glibc()


def tune() -> bool:
    """Fixed mmap and trim thresholds and at most ``ARENAS`` arenas for this process;
    False where there is no glibc."""
    if _LIBC is None:
        return False
    # Both thresholds, the mmap one first: setting either stops glibc's own adjustment of
    # the mmap threshold, which would stay at 128 KiB and mmap every chunk.
    return bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and _LIBC.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                and _LIBC.mallopt(_M_ARENA_MAX, ARENAS))


def trim() -> None:
    """Give the free holes of every arena (and the main one's top) back to the kernel."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class Busy:
    """Counts transfers in progress; the last one to end trims the heap.

    ``with busy: ...`` around each transfer (a pull, a blob stream)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def __enter__(self) -> Busy:
        with self._lock:
            self._count += 1
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            self._count -= 1
            idle = self._count == 0
        if idle and not sys.is_finalizing():
            # On a thread of its own: a trim takes a few ms (madvise of what a pull freed),
            # and the end of the pull or blob stream must not wait for it. Not while the
            # interpreter exits (a pull generator closed by the last collection): a thread
            # started then hangs the exit.
            threading.Thread(target=trim, name="heap-trim", daemon=True).start()
