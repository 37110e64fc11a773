"""Resolve a container's user ("name", "uid", "name:group", "uid:gid", ...) in its rootfs.

Follows runc's GetExecUser as Docker uses it: a name must exist in /etc/passwd, numbers
are taken verbatim; without an explicit group the user's primary group plus the groups
listing the user's name in /etc/group are used. /etc/passwd and /etc/group are resolved
in the rootfs (services/core/inroot.py), so a link pointing at the host's files can never
be followed out of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.core import inroot
from services.core.passwd import parse_group as _parse_group
from services.core.passwd import parse_passwd as _parse_passwd
from vocab.errors import InvalidArgument

MAX_ID = 2**31 - 1
_MAX_FILE = 4 * 1024 * 1024


@dataclass
class User:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""


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
    passwd = _parse_passwd(inroot.read_in_root(rootfs, "/etc/passwd", _MAX_FILE) or b"")
    groups = _parse_group(inroot.read_in_root(rootfs, "/etc/group", _MAX_FILE) or b"")

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
