"""Looking paths up in an image's filesystem without mounting it: the overlay view of a
stack of overlayfs-form snapshot dirs (top first), as treetar.merged_entries walks it.

``resolve`` follows symlinks the way Docker's ``FollowSymlinkInScope`` does: inside the
image's root, never out of it (an absolute target restarts at the image's root, ``..``
stops at it). A missing component ends the lookup; the rest is taken literally.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from services.core.errors import InvalidArgument
from services.imagestore.treetar import _is_whiteout, _lstat, _opaque

_MAX_LINKS = 40


@dataclass
class Found:
    path: str  # the real file (in the topmost layer that has it)
    st: os.stat_result
    stack: list[str]  # for a directory: its real dirs, top first, that the view merges


def child(dirs: list[str], name: str) -> Found | None:
    """``name`` in the directory made of ``dirs``."""
    first: tuple[str, os.stat_result] | None = None
    stack: list[str] = []
    for d in dirs:
        path = os.path.join(d, name)
        st = _lstat(path)
        if st is None:
            continue
        if _is_whiteout(st) or (first is not None and not stat.S_ISDIR(st.st_mode)):
            break
        if first is None:
            first = (path, st)
            if not stat.S_ISDIR(st.st_mode):
                break
        stack.append(path)
        if _opaque(path):
            break
    if first is None:
        return None
    return Found(first[0], first[1], stack if stat.S_ISDIR(first[1].st_mode) else [])


def root(layers: list[str]) -> list[str]:
    return layers[:1] if layers and _opaque(layers[0]) else list(layers)


def resolve(layers: list[str], path: str, follow_last: bool = True
            ) -> tuple[str, Found | None]:
    """(the real path relative to the root, what is there or None when missing)."""
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    stacks: list[list[str] | None] = [root(layers)]
    found: Found | None = None
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if done:
                done.pop()
                stacks.pop()
            continue
        cur = stacks[-1]
        hit = child(cur, name) if cur else None
        if hit is not None and stat.S_ISLNK(hit.st.st_mode) and (parts or follow_last):
            links += 1
            if links > _MAX_LINKS:
                raise InvalidArgument(f"too many levels of symbolic links in {path}")
            target = os.readlink(hit.path)
            if target.startswith("/"):
                done, stacks = [], [root(layers)]
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        done.append(name)
        stacks.append(hit.stack if hit is not None and hit.stack else None)
        found = hit
    if not done:
        st = os.lstat(layers[0]) if layers else None
        return "", (Found(layers[0], st, root(layers)) if st is not None else None)
    return "/".join(done), found


def read_file(layers: list[str], path: str, limit: int = 4 << 20) -> bytes | None:
    """A small regular file's bytes (/etc/passwd), or None when it is not there."""
    _, found = resolve(layers, path)
    if found is None or not stat.S_ISREG(found.st.st_mode):
        return None
    with open(found.path, "rb") as f:
        return f.read(limit)
