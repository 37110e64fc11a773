"""`docker cp` out of a container through its mounts: the stat and the tar of one path of
the container's view (cpview.py), for the paths the image store cannot answer from the
layers alone (ones that cross a volume, a bind mount or a running container's tmpfs).

The tar is dockerd's layout, the same as the image store's (imagestore/containerfiles.py):
a file as one entry by its base name, a directory as its base name and everything under
it, "dir/." as "./..."; PAX headers with owners, modes, mtimes, xattrs, hard links (to the
first name written), symlinks as symlinks. Every file is read through the fd its walk
opened (O_PATH | O_NOFOLLOW, then reopened): nothing is ever read through a symlink.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import IO

from muelle.types.v1 import types_pb2

from services.core.inroot import fd_path
from services.core.paxtar import PaxTar, xattr_headers
from services.core.tarstream import stream_archive
from services.shim.cpview import Found, View, children, open_file
from vocab.timefmt import rfc3339_nano


def name_of(path: str, found: Found) -> str:
    """The entry's name in the tar and in the stat, as dockerd gives it."""
    if path.endswith("/."):
        return "."
    return found.parts[-1] if found.parts else "/"


def stat_of(path: str, found: Found) -> types_pb2.ContainerPathStat:
    """The stat of ``found`` (lstat; a symlink's own target, unresolved, as the image
    store gives it)."""
    st = found.st
    target = os.readlink("", dir_fd=found.fd) if stat.S_ISLNK(st.st_mode) else ""
    return types_pb2.ContainerPathStat(name=name_of(path, found), size=st.st_size,
                                       mode=st.st_mode, mtime=rfc3339_nano(st.st_mtime_ns),
                                       link_target=target)


def read(view: View, path: str, found: Found) -> Iterator[bytes]:
    """The tar of ``found`` (what ``path`` resolved to); takes over ``view``."""
    name = name_of(path, found)
    arc = "." if name == "/" else name

    def produce(out: IO[bytes]) -> None:
        try:
            tar = _Writer(out)
            tar.add(arc, found.fd, found.st)
            if stat.S_ISDIR(found.st.st_mode):
                tar.tree(view, found.parts, found.fd, arc)
            tar.close()
        finally:
            os.close(found.fd)
            view.close()

    return stream_archive(produce)  # type: ignore[arg-type]


def _xattrs(fd: int, st: os.stat_result) -> dict[str, str]:
    # Through the fd's magic link, followed to the file it pins; a symlink has none here.
    return {} if stat.S_ISLNK(st.st_mode) else xattr_headers(fd_path(fd), follow_symlinks=True)


class _Writer(PaxTar):
    def tree(self, view: View, parts: list[str], fd: int, arc: str) -> None:
        for name, child in children(view, parts, fd):
            try:
                st = os.fstat(child)
                self.add(f"{arc}/{name}", child, st)
                if stat.S_ISDIR(st.st_mode):
                    self.tree(view, [*parts, name], child, f"{arc}/{name}")
            finally:
                os.close(child)

    def add(self, arc: str, fd: int, st: os.stat_result) -> None:
        self.entry(arc, st, _xattrs(fd, st), lambda: os.fdopen(open_file(fd), "rb"),
                   lambda: os.readlink("", dir_fd=fd))
