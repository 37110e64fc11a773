"""Wait for one fd to be readable, whatever its number.

select.select refuses fds of 1024 and above ("filedescriptor out of range"), and the
shim holds one pidfd per watched monitor (exits.py): past ~1000 containers every new
fd is that high. poll has no such limit."""

from __future__ import annotations

import select
from typing import Protocol


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def readable(fd: int | _HasFileno, timeout: float | None) -> bool:
    """True once ``fd`` is readable (or hung up), False after ``timeout`` seconds
    (None: no limit)."""
    probe = select.poll()
    probe.register(fd, select.POLLIN)
    return bool(probe.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999))))
