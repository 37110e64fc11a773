"""A container without a mount namespace: its mounts are made in the host's mount table.

runc runs such a config (linux.namespaces without "mount", runtime-tools' linux_ns_itype)
by mounting into the rootfs on the host and chroot()ing. We do the same, but first bind the
rootfs onto itself and make that bind rprivate (rootfs.prepare_unshared): every mount the
container makes then sits under that one mount, propagates nowhere, and ``delete`` (or a
failed create) removes it all with one lazy unmount. create records here which host path
that is and how many mounts were stacked on it before ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from services.runtime import linux

RECORD = "host-mounts.json"


def mounts_at(path: str) -> int:
    """How many mounts are stacked on ``path`` (its mountinfo lines)."""
    count = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # mountinfo escapes space, tab, newline and backslash as \ooo.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                           line.split()[4])
            if point == path:
                count += 1
    return count


def record(cdir: Path, rootfs: str) -> None:
    real = os.path.realpath(rootfs)
    (cdir / RECORD).write_text(json.dumps({"rootfs": real, "below": mounts_at(real)}))


def release(cdir: Path) -> None:
    """Lazily unmount what the container stacked on its rootfs (with everything under it)."""
    try:
        data = json.loads((cdir / RECORD).read_text())
    except (OSError, ValueError):
        return
    path, below = str(data["rootfs"]), int(data["below"])
    for _ in range(64):  # bounded: a mount the kernel will not drop must not hang delete
        if mounts_at(path) <= below:
            return
        with contextlib.suppress(OSError):
            linux.umount2(path, linux.MNT_DETACH)
