"""Scratch files that live in memory only (memfd_create(2)).

``tempfile.TemporaryFile()`` first looks for a temp dir by creating, writing and removing
a named probe file (``/tmp/<8 random chars>``) in every process that uses it; one killed
in that moment (the suite's kill -9 faults do that to monitors) left an empty file in the
host's /tmp. A memfd has no name in any filesystem: nothing to probe, nothing to leave.
"""

from __future__ import annotations

import os
from typing import BinaryIO


def memfile(name: str) -> BinaryIO:
    """A new read-write file in memory (close-on-exec; a child gets it by dup2), gone
    with its last descriptor. ``name`` shows in /proc/PID/fd as ``/memfd:NAME``."""
    return os.fdopen(os.memfd_create(name, os.MFD_CLOEXEC), "w+b")
