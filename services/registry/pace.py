"""A minimum throughput per blob download, so a registry cannot hold a pull forever.

HTTP timeouts bound the wait for one read; a registry sending a byte every 50 s answers
every read in time and would keep a pull (and its connection, its thread, its partial
file) alive for ever. A download that received fewer than ``min_bytes`` over a window of
``window`` seconds fails instead. The check runs as bytes arrive; a registry that sends
nothing at all is ended by the read timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vocab.errors import Unavailable


class MinimumPace:
    def __init__(self, min_bytes: int, window: float, registry: str, digest: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._min = min_bytes
        self._window = window
        self._registry = registry
        self._digest = digest
        self._clock = clock
        self._start = clock()
        self._count = 0  # bytes received since _start

    def received(self, n: int) -> None:
        """Count ``n`` more bytes; Unavailable when the window that just ended had too few."""
        if self._min <= 0:
            return
        self._count += n
        now = self._clock()
        elapsed = now - self._start
        if elapsed < self._window:
            return
        if self._count < self._min:
            raise Unavailable(
                f"registry {self._registry} is too slow sending blob {self._digest}: "
                f"{self._count} bytes in {elapsed:.0f} s, fewer than the minimum of "
                f"{self._min} bytes per {self._window:g} s (registry.blob_min_bytes, "
                "registry.blob_window_seconds)")
        self._start, self._count = now, 0
