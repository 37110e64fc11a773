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
import tarfile
from collections.abc import Iterator
from typing import IO

from muelle.types.v1 import types_pb2

from services.core.inroot import fd_path
from services.core.tarstream import stream_archive
from services.shim.cpview import Found, View, children, open_file
from vocab.timefmt import rfc3339_nano

_SKIP_XATTRS = ("trusted.overlay.", "user.overlay.")


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
    if stat.S_ISLNK(st.st_mode):
        return {}
    out = {}
    try:
        keys = os.listxattr(fd_path(fd))
    except OSError:
        return {}
    for key in sorted(keys):
        if key.startswith(_SKIP_XATTRS):
            continue
        try:
            value = os.getxattr(fd_path(fd), key)
        except OSError:
            continue
        out[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    return out


class _Writer:
    def __init__(self, out: IO[bytes]) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,  # noqa: SIM115
                                encoding="utf-8", errors="surrogateescape")
        self.inodes: dict[tuple[int, int], str] = {}

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
        info = tarfile.TarInfo(arc)
        info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
        info.mtime, info.mode = int(st.st_mtime), stat.S_IMODE(st.st_mode)
        info.pax_headers = _xattrs(fd, st)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.inodes:
                info.type, info.linkname = tarfile.LNKTYPE, self.inodes[key]
                self.tar.addfile(info)
                return
            if st.st_nlink > 1:
                self.inodes[key] = arc
            info.type, info.size = tarfile.REGTYPE, st.st_size
            with os.fdopen(open_file(fd), "rb") as f:
                self.tar.addfile(info, f)
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets: not representable (Docker skips them too)
        self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()
