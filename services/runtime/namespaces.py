"""linux.namespaces: which to unshare, which to join by path."""

from __future__ import annotations

import os

from services.runtime import linux
from vocab.errors import FailedPrecondition, InvalidArgument

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

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
    # Without "mount" the container shares the host's mount table (hostmounts.py).
    return out


def enter(ns: dict[str, str], map_user: Callable[[], None] | None = None,
          later: tuple[str, ...] = ()) -> None:
    """Join the namespaces given by path, then unshare the new ones (in the intermediate).

    A joined user namespace comes first (it grants the rights to join the rest). A new
    one is unshared alone, ``map_user`` has its maps written from outside, and only then
    are the others unshared, so that they belong to it; new ones of the kinds in ``later``
    are left to the caller. CLONE_NEWPID only applies to children: the caller must fork
    for the init.
    """
    for kind in sorted((k for k, p in ns.items() if p), key=lambda k: k != "user"):
        try:
            fd = os.open(ns[kind], os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise FailedPrecondition(f"namespace {kind} {ns[kind]}: {exc.strerror}") from None
        try:
            linux.setns(fd, FLAGS[kind])
        finally:
            os.close(fd)
    if ns.get("user") == "":
        linux.unshare(linux.CLONE_NEWUSER)
        if map_user is not None:
            map_user()
    if "user" in ns:
        # Become the namespace's root (its caps stay: this is not a drop from root).
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    flags = 0
    for kind, path in ns.items():
        if not path and kind != "user" and kind not in later:
            flags |= FLAGS[kind]
    if flags:
        linux.unshare(flags)
