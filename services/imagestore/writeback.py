"""Start writing a large file's bytes to the disk while it is still being written.

A blob's fsync (content.py) and a snapshot's syncfs (snapshots.py) make a pull durable;
with the kernel's defaults nothing is written back before them (dirty pages wait up to
30 s, or 10% of memory), so each of those calls waited for everything the pull had
written: a cold pull of 5 x 40 MiB wrote 400 MB that way (blobs and files), and a layer's
syncfs also waited for its neighbours' bytes. ``sync_file_range(SYNC_FILE_RANGE_WRITE)``
every few MiB starts that write-out as the bytes come, on the disk's time rather than at
the end; it guarantees nothing, so every fsync and syncfs stays where it was.

Where there is no sync_file_range (not Linux), this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start write-out of dirty pages, do not wait
EVERY = 8 << 20


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn  # a foreign function, typed by its argtypes


class Writeback:
    """Counts the bytes written to ``fd`` from ``start`` on; every ``every`` bytes, starts
    their write-out (the call releases the GIL, and errors are left to fsync)."""

    def __init__(self, fd: int, start: int = 0, every: int = EVERY) -> None:
        self._fd = fd
        self._start = start  # first byte not yet handed to the kernel's write-out
        self._pending = 0
        self._every = every
        self._call = _sync_file_range()

    def wrote(self, n: int) -> None:
        self._pending += n
        if self._pending >= self._every and self._call is not None:
            self._call(self._fd, self._start, self._pending, SYNC_FILE_RANGE_WRITE)
            self._start += self._pending
            self._pending = 0
