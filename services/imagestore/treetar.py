"""Tar streams of snapshot trees, for `export` and `commit`.

* ``merged_entries(layers)`` walks the overlay view of a stack of overlayfs-form dirs
  (a container's upper dir on top of its image's snapshots) without mounting anything:
  the first layer that has a name decides; a 0:0 character device hides it; a directory
  merges with the same directory of the layers below until one is opaque
  (``trusted.overlay.opaque=y``) or holds a non-directory or whiteout under that name.
  No mount means no mount left behind, and it works whatever the container's state.
* ``diff_entries(upper)`` walks one overlayfs-form dir as an OCI layer: a 0:0 character
  device becomes an empty ``.wh.NAME`` file, an opaque directory is followed by
  ``DIR/.wh..wh..opq`` (what Docker's overlay2 driver writes).
* ``write_tar`` writes entries as PAX: owner, mode (setuid/setgid/sticky), mtime, device
  numbers, symlink targets, hardlinks (by inode, to the first name written) and every
  xattr except overlayfs's own (``trusted.overlay.*``). Owner names are left empty: host
  names mean nothing inside an image.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from typing import IO

from services.imagestore.unpack import OPAQUE_WHITEOUT, OPAQUE_XATTR, WHITEOUT_PREFIX

# (name in the tar, real path; None for a synthesized whiteout marker, with the stat of
# the thing it stands for)
Entry = tuple[str, str | None, os.stat_result]

_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def merged_entries(layers: list[str]) -> Iterator[Entry]:
    """Every entry of the overlay view of ``layers`` (top first), parents first (the root
    itself is not one)."""
    yield from _merge("", layers if not _opaque(layers[0]) else layers[:1])


def top_entry(dirs: list[str], name: str
              ) -> tuple[tuple[str, os.stat_result] | None, list[str]]:
    """``name`` in the directory the overlay view makes of ``dirs`` (top first): its real
    path and stat in the topmost layer that has it (None when absent or whited out), and,
    for a directory, the real dirs that make it up, top first."""
    stack: list[str] = []
    first: tuple[str, os.stat_result] | None = None
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
    return first, stack


def _merge(rel: str, dirs: list[str]) -> Iterator[Entry]:
    names: set[str] = set()
    for d in dirs:
        names.update(os.listdir(d))
    for name in sorted(names):
        arc = f"{rel}{name}"
        first, stack = top_entry(dirs, name)
        if first is None:
            continue
        yield arc, first[0], first[1]
        if stack:
            yield from _merge(arc + "/", stack)


def diff_entries(upper: str) -> Iterator[Entry]:
    """The entries of ``upper`` as an OCI layer, parents first (the root is not one)."""
    yield from _diff(upper, "")


def _diff(real: str, rel: str) -> Iterator[Entry]:
    for name in sorted(os.listdir(real)):
        path = os.path.join(real, name)
        st = os.lstat(path)
        arc = f"{rel}{name}"
        if _is_whiteout(st):
            yield f"{rel}{WHITEOUT_PREFIX}{name}", None, st
            continue
        yield arc, path, st
        if stat.S_ISDIR(st.st_mode):
            if _opaque(path):
                yield f"{arc}/{OPAQUE_WHITEOUT}", None, st
            yield from _diff(path, arc + "/")


def _xattrs(path: str) -> dict[str, str]:
    out = {}
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    for key in sorted(keys):
        if key.startswith(_OVERLAY_XATTRS):
            continue
        try:
            value = os.getxattr(path, key, follow_symlinks=False)
        except OSError:
            continue
        # Binary values (security.capability) survive as surrogates, written back as bytes.
        out[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    return out


class TreeTar:
    """Writes Entry tuples into an uncompressed PAX tar stream."""

    def __init__(self, out: IO[bytes]) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,  # noqa: SIM115
                                encoding="utf-8", errors="surrogateescape")
        self._inodes: dict[tuple[int, int], str] = {}

    def add(self, arc: str, path: str | None, st: os.stat_result) -> None:
        info = tarfile.TarInfo(arc)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime)
        if path is None:  # whiteout marker
            info.type, info.mode, info.size = tarfile.REGTYPE, 0o600, 0
            self.tar.addfile(info)
            return
        info.mode = stat.S_IMODE(st.st_mode)
        info.pax_headers = _xattrs(path)
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
            with open(path, "rb") as f:
                self.tar.addfile(info, f)
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets: not representable in a layer (Docker skips them too)
        self.tar.addfile(info)

    def write(self, entries: Iterator[Entry]) -> None:
        for arc, path, st in entries:
            self.add(arc, path, st)

    def close(self) -> None:
        self.tar.close()
