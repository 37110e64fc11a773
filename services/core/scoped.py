"""Resolving a path inside a root, symlinks followed but never out of it (Docker's
FollowSymlinkInScope): an absolute link target restarts at the root, ``..`` stops at it.
The filesystem is whatever ``readlink`` looks at: a real directory (a build context) or
the overlay view of an image's layers."""

from __future__ import annotations

from collections.abc import Callable

from vocab.errors import InvalidArgument

MAX_LINKS = 40


def resolve(path: str, readlink: Callable[[list[str]], str | None],
            follow_last: bool = True,
            escaped: Callable[[], None] | None = None) -> list[str]:
    """The real components of ``path``; ``readlink(components)`` is the target of the
    symlink those components name, or None when they name anything else (or nothing).
    ``escaped``, when given, is called where the path would leave the root (``..`` at
    it, an absolute link target) before it stops there: to refuse instead."""
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if done:
                done.pop()
            elif escaped is not None:
                escaped()
            continue
        target = readlink([*done, name]) if parts or follow_last else None
        if target is None:
            done.append(name)
            continue
        links += 1
        if links > MAX_LINKS:
            raise InvalidArgument(f"too many levels of symbolic links in {path}")
        if target.startswith("/"):
            if escaped is not None:
                escaped()
            done = []
        parts = [p for p in target.split("/") if p and p != "."] + parts
    return done
