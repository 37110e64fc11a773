"""Idmapped image layers for containers in a user namespace (no chown of any layer).

A container with uid/gid maps sees its image layers through idmapped mounts
(mount_setattr(MOUNT_ATTR_IDMAP), Linux 5.12+; overlayfs accepts idmapped layers since
5.19): a file owned by 0 on disk is owned by the mapped root in the mount. overlayfs
clones each layer's mount when it is mounted, so the staging mounts are detached right
after and nothing stays to clean up. The writable layer is not idmapped (overlayfs works
in it with the mounter's credentials, which an idmapped mount would refuse): its root is
chowned to the mapped root, and what the container writes there has host IDs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct

from services.runtime.api import linux
from vocab.errors import FailedPrecondition

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442  # x86_64 and arm64 alike
_OPEN_TREE_CLONE = 1
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_IDMAP = 0x00100000


def _check(ret: int, what: str, path: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise FailedPrecondition(f"cannot idmap image layer {path} ({what}): "
                                 f"{os.strerror(err)}")
    return ret


def bind_idmapped(source: str, target: str, ns_fd: int) -> None:
    """Mount an idmapped view of ``source`` on ``target`` (an existing empty dir)."""
    fd = _check(_libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, source.encode(),
                              _OPEN_TREE_CLONE | os.O_CLOEXEC), "open_tree", source)
    try:
        attr = ctypes.create_string_buffer(struct.pack("QQQQ", _MOUNT_ATTR_IDMAP, 0, 0, ns_fd),
                                           32)
        _check(_libc.syscall(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH, attr,
                             ctypes.c_size_t(32)), "mount_setattr", source)
        _check(_libc.syscall(_SYS_MOVE_MOUNT, fd, b"", _AT_FDCWD, target.encode(),
                             _MOVE_MOUNT_F_EMPTY_PATH), "move_mount", source)
    finally:
        os.close(fd)


def detach(target: str) -> None:
    with contextlib.suppress(OSError):  # already gone: nothing to detach
        linux.umount2(target, linux.MNT_DETACH)
