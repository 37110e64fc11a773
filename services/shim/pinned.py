"""A namespace pinned by a file: the namespace file bind-mounted over a plain file keeps
it alive with no process in it. One mount over a file, whatever the namespace's kind, so
the network namespaces (network/netns.py) and the user namespaces (userns.py) share these;
apart from both so that neither imports the other for them (they were an import cycle).
"""

from __future__ import annotations

import contextlib
import os

from services.runtime.api import linux


def is_pinned(path: str) -> bool:
    """Whether ``path`` is a mounted namespace file (nsfs)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == path for line in f)
    except OSError:
        return False


def unpin(path: str) -> None:
    """Unpin and delete; the namespace (and its veth ends) go with its last user."""
    if is_pinned(path):
        with contextlib.suppress(OSError):  # raced with another unpin
            linux.umount2(path, linux.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
