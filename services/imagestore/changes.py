"""`docker diff`: what a container changed, read from its writable (overlayfs upper) layer.

An entry of the upper layer is "deleted" when it is a whiteout (a 0/0 character device),
"changed" when an image layer below has the same path (a copy-up: also each parent
directory of a changed path), else "added". Only the upper layer is read, never written,
and nothing is followed: lstat, readdir.

The runtime makes mount targets in the rootfs (/etc/hosts, /etc/hostname, /etc/resolv.conf,
/dev, /proc, /sys ...); dockerd keeps those in an "init" layer below the container's own,
so they never show in its diff. They are left out here the same way, and so is a
directory left changed only by them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

CHANGED, ADDED, DELETED = 0, 1, 2

# dockerd's init layer (daemon/initlayer): paths a container's runtime setup makes.
INIT_PATHS = frozenset({
    "/dev", "/dev/pts", "/dev/shm", "/dev/console", "/proc", "/sys", "/.dockerenv",
    "/etc/resolv.conf", "/etc/hosts", "/etc/hostname", "/etc/mtab",
})


def _whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def changes(upper: str, lowers: Sequence[str]) -> list[tuple[str, int]]:
    """(path, kind) of every change, sorted by path."""
    found: dict[str, int] = {}

    def in_lowers(rel: str) -> bool:
        return any(os.path.lexists(os.path.join(lower, rel)) for lower in lowers)

    for top, dirs, files in os.walk(upper):  # never follows symlinks to directories
        rel_top = os.path.relpath(top, upper)
        for name in [*dirs, *files]:
            rel = name if rel_top == "." else f"{rel_top}/{name}"
            st = os.lstat(os.path.join(upper, rel))
            if _whiteout(st):
                found["/" + rel] = DELETED
            else:
                found["/" + rel] = CHANGED if in_lowers(rel) else ADDED
    for path in INIT_PATHS:
        found.pop(path, None)
    # A directory changed only because init paths were made in it (a copy-up of /etc for
    # /etc/hosts) is no change of the container's.
    for path in sorted(found, key=len, reverse=True):
        if found[path] == CHANGED and _dir_only_for_init(path, upper) \
                and not any(p.startswith(path + "/") for p in found):
            del found[path]
    return sorted(found.items())


def _dir_only_for_init(path: str, upper: str) -> bool:
    full = os.path.join(upper, path.lstrip("/"))
    if not stat.S_ISDIR(os.lstat(full).st_mode):
        return False
    return any(p.startswith(path + "/") for p in INIT_PATHS) and all(
        f"{path}/{name}" in INIT_PATHS for name in os.listdir(full))
