"""One file-tree entry at a time into an uncompressed PAX tar stream: the writer behind
the image store's export, commit and `docker cp` out of layers (imagestore/treetar.py)
and the shim's `docker cp` out through a container's mounts (shim/copyout.py).

Entries keep owner, mode (setuid/setgid/sticky), mtime, device numbers, symlink targets,
hard links (by inode, to the first name written) and every xattr except overlayfs's own.
Owner names are left empty: host names mean nothing inside a container. How an entry's
bytes, link target and xattrs are read is the caller's: by path, or through fds that
never follow a link.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from typing import IO

_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")


def xattr_headers(path: str, follow_symlinks: bool = False) -> dict[str, str]:
    """The PAX headers of ``path``'s xattrs (overlayfs's own left out)."""
    out = {}
    try:
        keys = os.listxattr(path, follow_symlinks=follow_symlinks)
    except OSError:
        return {}
    for key in sorted(keys):
        if key.startswith(_OVERLAY_XATTRS):
            continue
        try:
            value = os.getxattr(path, key, follow_symlinks=follow_symlinks)
        except OSError:
            continue
        # Binary values (security.capability) survive as surrogates, written back as bytes.
        out[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    return out


class PaxTar:
    """Writes entries into an uncompressed PAX tar stream."""

    def __init__(self, out: IO[bytes]) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,  # noqa: SIM115
                                encoding="utf-8", errors="surrogateescape")
        self._inodes: dict[tuple[int, int], str] = {}

    def entry(self, arc: str, st: os.stat_result, xattrs: dict[str, str],
              data: Callable[[], IO[bytes]], link: Callable[[], str]) -> None:
        """``arc`` as ``st`` describes it; ``data()`` opens a regular file's bytes (not
        called for a hard link to a name already written), ``link()`` reads a symlink."""
        info = self.info(arc, st)
        info.mode = stat.S_IMODE(st.st_mode)
        info.pax_headers = xattrs
        mode = st.st_mode
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._inodes:
                info.type, info.linkname = tarfile.LNKTYPE, self._inodes[key]
                self.tar.addfile(info)
                return
            if st.st_nlink > 1:
                self._inodes[key] = arc
            info.type, info.size = tarfile.REGTYPE, st.st_size
            with data() as f:
                self.tar.addfile(info, f)
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, link()
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets: not representable in a tar (Docker skips them too)
        self.tar.addfile(info)

    @staticmethod
    def info(arc: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(arc)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime)
        return info

    def close(self) -> None:
        self.tar.close()
