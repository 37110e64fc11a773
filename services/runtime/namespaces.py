"""linux.namespaces: which to unshare, which to join by path."""

from __future__ import annotations

import os
from typing import Any

from services.core.errors import FailedPrecondition, InvalidArgument
from services.runtime import linux

FLAGS = {
    "mount": linux.CLONE_NEWNS, "uts": linux.CLONE_NEWUTS, "ipc": linux.CLONE_NEWIPC,
    "network": linux.CLONE_NEWNET, "pid": linux.CLONE_NEWPID, "cgroup": linux.CLONE_NEWCGROUP,
    "user": linux.CLONE_NEWUSER, "time": linux.CLONE_NEWTIME,
}


def wanted(namespaces: list[dict[str, Any]]) -> dict[str, str]:
    """type -> path ("" = a new namespace)."""
    out: dict[str, str] = {}
    for ns in namespaces:
        kind = ns.get("type", "")
        if kind not in FLAGS:
            raise InvalidArgument(f"unknown namespace type {kind!r}")
        if kind in out:
            raise InvalidArgument(f"namespace {kind!r} listed twice")
        out[kind] = ns.get("path") or ""
    if "user" in out:
        raise InvalidArgument("user namespaces are not supported by muelle-runtime yet")
    if "mount" not in out:
        raise InvalidArgument("a mount namespace is required")
    return out


def enter(ns: dict[str, str]) -> None:
    """Join the namespaces given by path, then unshare the new ones (in the intermediate).

    CLONE_NEWPID only applies to children: the caller must fork for the init.
    """
    for kind, path in ns.items():
        if not path:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise FailedPrecondition(f"namespace {kind} {path}: {exc.strerror}") from None
        try:
            linux.setns(fd, FLAGS[kind])
        finally:
            os.close(fd)
    flags = 0
    for kind, path in ns.items():
        if not path:
            flags |= FLAGS[kind]
    if flags:
        linux.unshare(flags)
