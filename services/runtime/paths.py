"""Resolve a container path inside the rootfs without ever leaving it (like securejoin).

Symlinks are followed component by component with the rootfs as "/": an absolute target
restarts at the rootfs, and ``..`` stops at the rootfs, so a hostile image cannot make us
create or mount over a host path.
"""

from __future__ import annotations

import os
import stat

from services.core.errors import InvalidArgument

MAX_LINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    pending = [p for p in unsafe.split("/")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise InvalidArgument(f"{unsafe}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = target.split("/") + pending
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def make_target(path: str, is_dir: bool) -> None:
    """Create a mount target (a dir, or an empty file for file binds) if missing."""
    if is_dir:
        os.makedirs(path, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.lexists(path):
        with open(path, "a"):
            pass
