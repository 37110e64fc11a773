"""One host-wide lock for every change to bridges, leases and netfilter rules.

Engines side by side on one host share the kernel's tables and must not pick the same
subnet or drop a chain another engine is filling; network changes are short, so one lock
is enough.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

PATH = "/run/lock/muelle-network.lock"


@contextmanager
def held(path: str = PATH) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
