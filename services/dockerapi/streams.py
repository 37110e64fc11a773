"""Docker's output framing (COMPAT.md §4) and timestamps.

Without a TTY, output is multiplexed: each write is a frame with an 8-byte header
``[stream, 0, 0, 0, uint32 big-endian length]`` (1 = stdout, 2 = stderr) and the bytes.
With a TTY it is the raw bytes. Logs, attach and exec start all follow this rule.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

STDIN, STDOUT, STDERR = 0, 1, 2
_STREAMS = {"stdout": STDOUT, "stderr": STDERR}


def frame(stream: str, data: bytes) -> bytes:
    """One multiplexed frame of ``data`` from ``stream`` ("stdout"/"stderr")."""
    return struct.pack(">BxxxL", _STREAMS.get(stream, STDOUT), len(data)) + data


def encode(stream: str, data: bytes, tty: bool) -> bytes:
    return data if tty else frame(stream, data)


async def pump_stdin(pipe: Any, call: Any, message: Any) -> None:
    """A hijacked client's bytes to a process's stdin (``message(stdin=...)`` on the
    bidirectional ``call``); the client's EOF closes that stdin (``close_stdin``)."""
    with contextlib.suppress(Exception):  # the stream ended first: nothing to feed
        while data := await pipe.read():
            await call.send(message(stdin=data))
        await call.send(message(close_stdin=True))
