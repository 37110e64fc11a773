"""Looking paths up in an image's filesystem without mounting it: the overlay view of a
stack of overlayfs-form snapshot dirs (top first), as treetar.merged_entries walks it.

``resolve`` follows symlinks inside the image's root, never out of it
(services/core/scoped.py); a missing component ends the lookup, the rest is taken
literally.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from services.core import scoped
from services.imagestore.treetar import _opaque, top_entry


@dataclass
class Found:
    path: str  # the real file (in the topmost layer that has it)
    st: os.stat_result
    stack: list[str]  # for a directory: its real dirs, top first, that the view merges


def child(dirs: list[str], name: str) -> Found | None:
    """``name`` in the directory made of ``dirs``."""
    first, stack = top_entry(dirs, name)
    if first is None:
        return None
    return Found(first[0], first[1], stack if stat.S_ISDIR(first[1].st_mode) else [])


def root(layers: list[str]) -> list[str]:
    return layers[:1] if layers and _opaque(layers[0]) else list(layers)


def lookup(layers: list[str], parts: list[str]) -> Found | None:
    """What ``parts`` (no symlink followed) name in the view, or None."""
    dirs = root(layers)
    found: Found | None = None
    for name in parts:
        found = child(dirs, name) if dirs else None
        if found is None:
            return None
        dirs = found.stack
    return found


def resolve(layers: list[str], path: str, follow_last: bool = True
            ) -> tuple[str, Found | None]:
    """(the real path relative to the root, what is there or None when missing)."""
    def readlink(parts: list[str]) -> str | None:
        found = lookup(layers, parts)
        if found is None or not stat.S_ISLNK(found.st.st_mode):
            return None
        return os.readlink(found.path)

    parts = scoped.resolve(path, readlink, follow_last)
    if not parts:
        st = os.lstat(layers[0]) if layers else None
        return "", (Found(layers[0], st, root(layers)) if st is not None else None)
    return "/".join(parts), lookup(layers, parts)


def read_file(layers: list[str], path: str, limit: int = 4 << 20) -> bytes | None:
    """A small regular file's bytes (/etc/passwd), or None when it is not there."""
    _, found = resolve(layers, path)
    if found is None or not stat.S_ISREG(found.st.st_mode):
        return None
    with open(found.path, "rb") as f:
        return f.read(limit)
