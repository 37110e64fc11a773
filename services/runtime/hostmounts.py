"""A container without a mount namespace: its mounts are made in the host's mount table.

runc runs such a config (linux.namespaces without "mount", runtime-tools' linux_ns_itype)
by mounting into the rootfs on the host and chroot()ing. We do the same, but first bind the
rootfs onto itself and make that bind rprivate (rootfs.prepare_unshared): every mount the
container makes then sits under that one mount, propagates nowhere, and ``delete`` (or a
failed create) removes it all with one lazy unmount. create records here which host path
that is and how many mounts were stacked on it before ours.
"""

from __future__ import annotations

import os

from services.runtime import cjson, linux
from services.runtime.scoped import suppress

RECORD = "host-mounts.json"
_OCTAL = frozenset("01234567")


def unescape(field: str) -> str:
    """A mountinfo field as it names the path: \\ooo (space, tab, newline, backslash) is
    the character (re.sub of r"\\([0-7]{3})" without re: ~4 ms of every create)."""
    if "\\" not in field:
        return field
    out, at = [], 0
    while at < len(field):
        code = field[at + 1:at + 4]
        if field[at] == "\\" and len(code) == 3 and _OCTAL.issuperset(code):
            out.append(chr(int(code, 8)))
            at += 4
        else:
            out.append(field[at])
            at += 1
    return "".join(out)


def mounts_at(path: str) -> int:
    """How many mounts are stacked on ``path`` (its mountinfo lines)."""
    count = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if unescape(line.split()[4]) == path:
                count += 1
    return count


def record(cdir: str, rootfs: str) -> None:
    real = os.path.realpath(rootfs)
    with open(os.path.join(cdir, RECORD), "w") as f:
        f.write(cjson.dumps({"rootfs": real, "below": mounts_at(real)}))


def release(cdir: str) -> None:
    """Lazily unmount what the container stacked on its rootfs (with everything under it)."""
    try:
        with open(os.path.join(cdir, RECORD)) as f:
            data = cjson.loads(f.read())
    except (OSError, ValueError):
        return
    path, below = str(data["rootfs"]), int(data["below"])
    for _ in range(64):  # bounded: a mount the kernel will not drop must not hang delete
        if mounts_at(path) <= below:
            return
        with suppress(OSError):
            linux.umount2(path, linux.MNT_DETACH)
