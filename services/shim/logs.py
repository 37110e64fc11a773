"""Container logs in Docker's json-file format: one JSON object per line.

    {"log":"hello\\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}

The monitor writes (LogWriter); the shim reads (read_log / follow_log). Bytes that are not
UTF-8 round-trip through surrogate escapes, so Logs returns exactly what was written.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from services.core.errors import InvalidArgument
from services.core.timefmt import parse_ns, rfc3339_nano

__all__ = ["LogWriter", "parse_time", "rfc3339_nano"]

# Docker splits long lines into 16 KiB entries.
MAX_ENTRY = 16 * 1024


@dataclass
class Entry:
    stream: str
    data: bytes
    time: str  # RFC 3339 with nanoseconds
    time_ns: int


def parse_time(text: str) -> int:
    """RFC 3339 or Unix seconds -> ns since the epoch; InvalidArgument when neither."""
    try:
        return parse_ns(text)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


class LogWriter:
    """Appends entries for one container; splits output into lines like Docker."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._partial[stream] + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= MAX_ENTRY:
                if len(buf) >= MAX_ENTRY:
                    self._emit(stream, buf[:MAX_ENTRY])
                    buf = buf[MAX_ENTRY:]
                    continue
                break
            self._emit(stream, buf[: nl + 1])
            buf = buf[nl + 1 :]
        self._partial[stream] = buf
        self._file.flush()

    def flush_partial(self) -> None:
        """Write out unterminated lines (at EOF)."""
        for stream, buf in self._partial.items():
            if buf:
                self._emit(stream, buf)
            self._partial[stream] = b""
        self._file.flush()

    def _emit(self, stream: str, data: bytes) -> None:
        line = {"log": data.decode("utf-8", "surrogateescape"), "stream": stream,
                "time": rfc3339_nano(time.time_ns())}
        self._file.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self.flush_partial()
        self._file.close()


def _decode(line: str) -> Entry | None:
    try:
        obj = json.loads(line)
        stamp = obj.get("time", "")
        return Entry(obj["stream"], obj["log"].encode("utf-8", "surrogateescape"), stamp,
                     parse_time(stamp) if stamp else 0)
    except (ValueError, KeyError, TypeError, AttributeError, InvalidArgument):
        return None  # a torn or foreign line: skip it, never fail the reader


def _wanted(entry: Entry, streams: set[str], since_ns: int) -> bool:
    return entry.stream in streams and entry.time_ns >= since_ns


def follow_log(
    path: str,
    *,
    tail: int = 0,
    since: str = "",
    streams: set[str] | None = None,
    follow: bool = False,
    stopped: Callable[[], bool] = lambda: True,
    cancelled: Callable[[], bool] = lambda: False,
    poll: float = 0.05,
    pause: Callable[[float], object] = time.sleep,
) -> Iterator[Entry]:
    """Entries of the log at ``path``; with ``follow``, new ones until ``stopped()`` is true
    and the file is drained (or ``cancelled()``). Between reads it calls ``pause(poll)``,
    which may return early (the shim's wakes when the container's monitor exits)."""
    streams = streams or {"stdout", "stderr"}
    since_ns = parse_time(since) if since else 0
    try:
        f = open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except FileNotFoundError:
        if not follow:
            return
        while not os.path.exists(path):
            if stopped() or cancelled():
                return
            time.sleep(poll)
        f = open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    with f:
        existing: Iterator[Entry] = (
            e for e in map(_decode, _complete_lines(f)) if e and _wanted(e, streams, since_ns))
        if tail > 0:
            existing = iter(deque(existing, maxlen=tail))
        yield from existing
        if not follow:
            return
        pending = ""
        while not cancelled():
            # Check "stopped" before reading, so the last read surely saw the final output.
            done = stopped()
            chunk = f.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    entry = _decode(line)
                    if entry and _wanted(entry, streams, since_ns):
                        yield entry
                continue
            if done:
                return
            pause(poll)


def _complete_lines(f: IO[str]) -> Iterator[str]:
    """Lines ending in a newline; rewinds before a torn last line so follow re-reads it."""
    while True:
        pos = f.tell()
        line = f.readline()
        if not line:
            return
        if not line.endswith("\n"):
            f.seek(pos)
            return
        yield line
