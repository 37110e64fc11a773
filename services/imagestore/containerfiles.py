"""`docker cp` out of a container: one path of its root filesystem (the overlay view of its
writable layer over its image's layers), read without mounting it. A path that goes
through the container's mounts (volumes, bind mounts, a running one's tmpfs) is the
shim's to answer (services/shim/copyout.py): the gateway asks it first.

The path is resolved by view.resolve: symlinks on the way are followed inside the
container's root and never out of it (an absolute target restarts at that root, ".."
stops there); the last component is followed only when the path ends in "/" or "/." (as
dockerd does). The tar holds symlinks as symlinks: nothing of the host is ever read
through one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import IO

from services.core.tarstream import stream_archive
from services.imagestore.treetar import TreeTar, _merge
from services.imagestore.view import Found, resolve
from vocab.errors import NotFound


def _follow_last(path: str) -> bool:
    return path.endswith("/") or path.endswith("/.")


def find(layers: list[str], path: str) -> tuple[str, Found]:
    """(the resolved path relative to the root, what is there); NotFound when missing."""
    rel, found = resolve(layers, path, follow_last=_follow_last(path))
    if found is None:
        raise NotFound(f"Could not find the file {path} in container")
    return rel, found


def stat_path(layers: list[str], path: str) -> tuple[str, os.stat_result, str]:
    """(name, lstat, symlink target or "") of ``path``."""
    rel, found = find(layers, path)
    target = os.readlink(found.path) if stat.S_ISLNK(found.st.st_mode) else ""
    return "." if path.endswith("/.") else os.path.basename(rel) or "/", found.st, target


def read(layers: list[str], path: str) -> Iterator[bytes]:
    """A tar of ``path``: a file as one entry by its base name, a directory as its base
    name and everything under it (dockerd's layout, which `docker cp` renames)."""
    rel, found = find(layers, path)
    # "dir/." names the contents: entries "./f", which `docker cp` puts in the destination
    name = "." if path.endswith("/.") else os.path.basename(rel) or "."

    def produce(out: IO[bytes]) -> None:
        tar = TreeTar(out)
        tar.add(name, found.path, found.st)
        if stat.S_ISDIR(found.st.st_mode):
            tar.write(_merge(f"{name}/", found.stack))
        tar.close()

    return stream_archive(produce)  # type: ignore[arg-type]
