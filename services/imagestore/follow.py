"""Reading a layer while it downloads, so its unpack overlaps its own download.

Docker extracts a layer only once it is complete (moby#21814); for an image of one big
layer that puts the whole download before the whole unpack. The pull instead unpacks
layers (up to three at a time, pull.py) from their partial ingest files as the downloads
append to them: a reader
at the end of the file waits for more. The unpack verifies the layer's diff ID itself, and
the compressed digest is checked when the download ends, before the reader sees its EOF.

Anything unusual (the download restarts from zero, fails, or the unpack refuses the bytes)
aborts the streamed unpack; the pull then unpacks the layer from the complete blob as it
always did.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

WAIT = 0.25  # longest sleep at the end of the file before checking again


class StreamAborted(Exception):
    """The streamed read cannot go on; unpack from the complete blob instead."""


class Growing:
    """How far one download has written its partial file, and whether it has ended."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.written = 0
        self.ended = False
        self.failed = False

    def advance(self, written: int) -> None:
        with self._cond:
            self.written = written
            self._cond.notify_all()

    def end(self, failed: bool) -> None:
        with self._cond:
            self.ended, self.failed = True, failed
            self._cond.notify_all()

    def wait_past(self, position: int, cancelled: threading.Event) -> None:
        """Until more than ``position`` bytes are written or the download ends."""
        with self._cond:
            while not self.ended and self.written <= position:
                if cancelled.is_set():
                    raise StreamAborted("pull cancelled")
                self._cond.wait(WAIT)


class FollowReader(io.RawIOBase):
    """The bytes of ``path`` as a download appends them; EOF once the download ended."""

    def __init__(self, path: Path, growing: Growing, cancelled: threading.Event) -> None:
        super().__init__()
        self._growing = growing
        self._cancelled = cancelled
        self._pos = 0
        self._fd = -1
        while True:  # the download creates the file when it starts
            try:
                self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                break
            except FileNotFoundError:
                if growing.ended:
                    raise StreamAborted("the download ended before it began") from None
                growing.wait_past(growing.written, cancelled)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while True:
            n = os.readv(self._fd, [buffer])
            if n:
                self._pos += n
                return n
            if os.fstat(self._fd).st_nlink == 0:  # renamed when complete, unlinked if not
                raise StreamAborted("the download started over in a new file")
            if self._growing.ended:
                if self._growing.failed:
                    raise StreamAborted("the download failed")
                n = os.readv(self._fd, [buffer])  # what was written just before the end
                self._pos += n
                return n  # 0: the whole blob was read
            self._growing.wait_past(self._pos, self._cancelled)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()
