"""Container logs in Docker's json-file format: one JSON object per line.

    {"log":"hello\\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}

The monitor writes (LogWriter); the shim reads (follow_log). Bytes that are not UTF-8
round-trip through surrogate escapes, so Logs returns exactly what was written.

Unlike Docker's default, logs are rotated: when the file would pass ``max_size`` it becomes
``container.log.1`` (``.1`` becomes ``.2``, ...), keeping ``max_files`` files in all.
Readers read the rotated files oldest first, and a follower that sees the file replaced
drains the old one and goes on with the new.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from services.core import modes
from vocab.errors import InvalidArgument
from vocab.timefmt import parse_ns, rfc3339_nano

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


def rotated(path: str) -> list[str]:
    """The rotated files of the log at ``path`` that exist, oldest first."""
    found = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        found.append(f"{path}.{n}")
        n += 1
    return found[::-1]


class LogWriter:
    """Appends entries for one container; splits output into lines like Docker; rotates
    the file past ``max_size`` bytes (0: never), keeping ``max_files`` files.

    On a full disk (or any failed write) the entries of that write are dropped whole: the
    file is cut back to its last complete line, so readers never meet a torn one, and the
    container goes on (Docker's json-file logger drops too). ``dropped`` counts them."""

    def __init__(self, path: str, max_size: int = 0, max_files: int = 1) -> None:
        self._path = path
        self._max_size = max_size
        self._max_files = max(1, max_files)
        self._fd = self._open("a")
        self._size = os.fstat(self._fd).st_size
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._pending: list[bytes] = []  # whole lines, written by _flush in one write
        self.dropped = 0  # entries lost to failed writes (a full disk)
        self.error: OSError | None = None  # the last such failure

    def _open(self, mode: str) -> int:
        # 0640 like Docker's json logs: what a container prints may be secret too. Always
        # O_APPEND: after a failed write cuts the file back, the next one goes at its new
        # end (not past it, which would leave a hole of NULs).
        fd = modes.open_private(self._path, modes.LOG_FILE, append=True)
        if mode == "w":
            os.ftruncate(fd, 0)
        return fd

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
        self._flush()

    def flush_partial(self) -> None:
        """Write out unterminated lines (at EOF)."""
        for stream, buf in self._partial.items():
            if buf:
                self._emit(stream, buf)
            self._partial[stream] = b""
        self._flush()

    def _emit(self, stream: str, data: bytes) -> None:
        line = (json.dumps({"log": data.decode("utf-8", "surrogateescape"), "stream": stream,
                            "time": rfc3339_nano(time.time_ns())}) + "\n"
                ).encode("utf-8", "surrogateescape")
        if self._max_size and self._size and self._size + len(line) > self._max_size:
            self._flush()
            self._rotate()
        self._pending.append(line)
        self._size += len(line)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        lines = len(self._pending)
        self._pending.clear()
        good = self._size - len(data)  # where the file ends with whole lines
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            # Cut the torn tail off (which frees its blocks too) and drop these entries.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, good)
            self._size = good
            self.dropped += lines
            self.error = exc

    def _rotate(self) -> None:
        os.close(self._fd)
        if self._max_files == 1:
            mode = "w"  # one file only: start it again
        else:
            mode = "a"
            for n in range(self._max_files - 1, 0, -1):
                older = f"{self._path}.{n - 1}" if n > 1 else self._path
                if os.path.exists(older):
                    os.replace(older, f"{self._path}.{n}")
        self._fd = self._open(mode)
        self._size = 0

    def close(self) -> None:
        self.flush_partial()
        os.close(self._fd)

    def hand_over(self) -> dict[str, bytes]:
        """Close the file without the unfinished lines, which are returned: the writer
        that takes over (the native monitor tail) goes on with them in the same entry."""
        partial, self._partial = self._partial, {"stdout": b"", "stderr": b""}
        self._flush()
        os.close(self._fd)
        return partial


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
    older = rotated(path)
    f: IO[str]
    try:
        f = open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except FileNotFoundError:
        if not follow:
            yield from _pick(_read_files(older), streams, since_ns, tail)
            return
        while not os.path.exists(path):
            if stopped() or cancelled():
                return
            time.sleep(poll)
        f = open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    try:
        # Rotated files first (the current one is open already: a rotation now only
        # renames it, and what we hold stays what we read last).
        existing = _chain(_read_files([p for p in older if p != path]), _complete_lines(f))
        yield from _pick(existing, streams, since_ns, tail)
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
            if _replaced(f, path):
                # Rotated: what we hold was renamed away and is drained; go on with the
                # file written after it (a newer rotated one, or the current one).
                nxt = _next_file(f, path)
                f.close()
                f = nxt
                pending = ""
                continue
            if done:
                return
            pause(poll)
    finally:
        f.close()


def _replaced(f: IO[str], path: str) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


def _next_file(f: IO[str], path: str) -> IO[str]:
    """The log file written after the one ``f`` holds: the next in rotation order, or the
    oldest kept one when ours was rotated out of existence meanwhile."""
    ours = os.fstat(f.fileno()).st_ino
    for _ in range(10):  # a rotation between listing and opening: look again
        order = [*rotated(path), path]
        inodes = []
        for p in order:
            try:
                inodes.append(os.stat(p).st_ino)
            except FileNotFoundError:
                inodes.append(-1)
        i = inodes.index(ours) + 1 if ours in inodes else 0
        i = min(i, len(order) - 1)
        try:
            nxt = open(order[i], encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
        except FileNotFoundError:
            continue
        if os.fstat(nxt.fileno()).st_ino == inodes[i]:
            return nxt
        nxt.close()
    return open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115


def _read_files(paths: list[str]) -> Iterator[str]:
    for p in paths:
        try:
            with open(p, encoding="utf-8", errors="surrogateescape") as f:
                yield from _complete_lines(f)
        except FileNotFoundError:
            continue  # rotated away while we read: its lines are in a newer file


def _chain(*parts: Iterator[str]) -> Iterator[str]:
    for part in parts:
        yield from part


def _pick(lines: Iterator[str], streams: set[str], since_ns: int, tail: int) -> Iterator[Entry]:
    entries: Iterator[Entry] = (
        e for e in map(_decode, lines) if e and _wanted(e, streams, since_ns))
    if tail > 0:
        entries = iter(deque(entries, maxlen=tail))
    yield from entries


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
