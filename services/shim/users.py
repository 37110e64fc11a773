"""Resolve a container's user ("name", "uid", "name:group", "uid:gid", ...) in its rootfs.

Follows runc's GetExecUser as Docker uses it: a name must exist in /etc/passwd, numbers
are taken verbatim; without an explicit group the user's primary group plus the groups
listing the user's name in /etc/group are used. /etc/passwd and /etc/group are opened
component by component relative to the rootfs, and symlinks are resolved *inside* the
rootfs, so a link pointing at the host's files can never be followed out of it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from services.core.passwd import parse_group as _parse_group
from services.core.passwd import parse_passwd as _parse_passwd
from vocab.errors import InvalidArgument

MAX_ID = 2**31 - 1
_MAX_SYMLINKS = 40
_MAX_FILE = 4 * 1024 * 1024


@dataclass
class User:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""


def read_in_root(rootfs: str, path: str) -> bytes | None:
    """Contents of ``path`` (absolute, inside the container) or None if missing.

    Every component is opened with O_NOFOLLOW relative to its parent's fd; symlinks are
    re-resolved against the rootfs, as if the rootfs were "/".
    """
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fds = [root_fd]
    try:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        links = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if len(fds) > 1:  # ".." never climbs above the rootfs
                    os.close(fds.pop())
                continue
            last = not parts
            try:
                # O_PATH|O_NOFOLLOW: a symlink yields an fd to the link itself, and nothing
                # (FIFO, device) is really opened before its type is known.
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fds[-1])
            except OSError:
                return None
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                os.close(fd)
                links += 1
                if links > _MAX_SYMLINKS:
                    return None
                target = os.readlink(name, dir_fd=fds[-1])
                if target.startswith("/"):
                    while len(fds) > 1:
                        os.close(fds.pop())
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            st = os.fstat(fd)
            if last:
                try:
                    if not stat.S_ISREG(st.st_mode):
                        return None
                    with open(f"/proc/self/fd/{fd}", "rb") as f:
                        return f.read(_MAX_FILE)
                finally:
                    os.close(fd)
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                return None
            fds.append(fd)
        return None
    finally:
        for fd in fds:
            os.close(fd)


def _number(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument(f"user/group id {text} is out of range")
    return value


def resolve(rootfs: str, spec_user: str) -> User:
    """Resolve ``spec_user`` against ``rootfs``; InvalidArgument for unknown names."""
    user_arg, _, group_arg = spec_user.partition(":")
    if spec_user and not user_arg:
        raise InvalidArgument(f"invalid user {spec_user!r}")
    passwd = _parse_passwd(read_in_root(rootfs, "/etc/passwd") or b"")
    groups = _parse_group(read_in_root(rootfs, "/etc/group") or b"")

    result = User()
    uid = _number(user_arg) if user_arg else 0
    if user_arg and uid is None:
        found = [p for p in passwd if p.name == user_arg]
        if not found:
            raise InvalidArgument(
                f"unable to find user {user_arg}: no matching entries in passwd file")
    else:
        found = [p for p in passwd if p.uid == uid]
    if found:
        entry = found[0]
        result.uid, result.gid, result.name = entry.uid, entry.gid, entry.name
        result.home = entry.home or "/"
    else:
        result.uid = uid or 0

    if group_arg:
        gid = _number(group_arg)
        if gid is None:
            match = [g for g in groups if g.name == group_arg]
            if not match:
                raise InvalidArgument(
                    f"unable to find group {group_arg}: no matching entries in group file")
            gid = match[0].gid
        result.gid = gid
        result.additional_gids = [gid]
        return result
    # No group given: primary group, then every group that lists the user by name.
    gids = [result.gid]
    if result.name:
        for group in groups:
            if result.name in group.members and group.gid not in gids:
                gids.append(group.gid)
    result.additional_gids = gids
    return result
