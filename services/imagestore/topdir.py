"""Spread the snapshot trees across the filesystem's inode groups (ext4's ``chattr +T``).

ext4 places a new directory's inode near its parent's, and a file's in its directory's
group, so every layer unpacked under ``snapshots/`` lands in the same few block groups. On
an ext4 without a journal that is slow right after a removal: the inode allocator scans
past each inode freed in the last minute (``recently_deleted()`` in fs/ext4/ialloc.c,
checked only when there is no journal) before it takes a free one, for every new inode, so
creating a layer's files after another layer's were removed gets quadratic. A Debian
layer (6,700 entries) took 5.5-6.4 s to unpack (4.3-4.7 s of kernel CPU, 65% of it in that
scan) right after a tree of its size was removed, and 1.2-1.5 s (0.3-0.4 s kernel) with
the flag on its parent.

``FS_TOPDIR_FL`` marks a directory as the top of unrelated hierarchies: ext4's Orlov
allocator then puts each new subdirectory in a lightly used group chosen by its name's
hash (our ``.tmp-<random>`` names), the way it spreads the directories of ``/``. The
flag is not inherited, so only the snapshot roots are spread; inside a layer the usual
locality holds. Filesystems without the flag (tmpfs, overlayfs, xfs...) refuse it and
nothing changes.
"""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

from services.core.logging import get_logger

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000
_FLAGS = struct.Struct("=i")  # the kernel reads and writes an int, whatever the ioctl's size


def flags(path: Path) -> int:
    """The inode flags of directory ``path`` (``lsattr``)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return int(_FLAGS.unpack(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(_FLAGS.size)))[0])
    finally:
        os.close(fd)


def spread_children(path: Path) -> bool:
    """Set ``FS_TOPDIR_FL`` on directory ``path``; False where the filesystem has no such
    flag (a placement hint only: nothing depends on it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        current = int(_FLAGS.unpack(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(_FLAGS.size)))[0])
        if not current & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, _FLAGS.pack(current | FS_TOPDIR_FL))
        return True
    except OSError as exc:  # ENOTTY, EOPNOTSUPP, EINVAL, EPERM: not this filesystem's
        get_logger(path=str(path)).debug("no top-directory flag", error=str(exc))
        return False
    finally:
        os.close(fd)
