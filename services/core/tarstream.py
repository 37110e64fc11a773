"""A tar (or any byte stream) written by a producer on a thread, read as chunks: what a
gRPC server streams from tarfile's write side (image save, `docker cp` out of a
container). The queue is bounded, so a large archive streams with constant memory, and
the producer stops when the reader goes away.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterator

CHUNK = 1 << 20


class _Cancelled(Exception):
    pass


class _QueueWriter(io.RawIOBase):
    def __init__(self, q: queue.Queue[bytes | BaseException | None],
                 cancelled: threading.Event) -> None:
        self.q = q
        self.cancelled = cancelled
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buf += data
        while len(self.buf) >= CHUNK:
            self._put(bytes(self.buf[:CHUNK]))
            del self.buf[:CHUNK]
        return len(data)

    def _put(self, item: bytes | BaseException | None) -> None:
        while True:
            if self.cancelled.is_set():
                raise _Cancelled()
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        if self.buf:
            self._put(bytes(self.buf))
        self._put(None)


def stream_archive(produce: Callable[[io.RawIOBase], None]) -> Iterator[bytes]:
    """Run ``produce(writer)`` on a thread; yield what it writes, in CHUNK pieces."""
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4)
    cancelled = threading.Event()
    writer = _QueueWriter(q, cancelled)

    def run() -> None:
        try:
            produce(writer)
            writer.finish()
        except _Cancelled:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side
            try:
                writer._put(exc)
            except _Cancelled:
                return

    thread = threading.Thread(target=run, name="save", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
