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
* ``TreeTar`` writes entries as PAX (core/paxtar.py): owner, mode, mtime, device
  numbers, symlink targets, hardlinks and every xattr except overlayfs's own
  (``trusted.overlay.*``). Owner names are left empty: host names mean nothing inside an
  image.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator

from services.core.paxtar import PaxTar, xattr_headers
from services.imagestore.unpack import OPAQUE_WHITEOUT, OPAQUE_XATTR, WHITEOUT_PREFIX

# (name in the tar, real path; None for a synthesized whiteout marker, with the stat of
# the thing it stands for)
Entry = tuple[str, str | None, os.stat_result]


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


class TreeTar(PaxTar):
    """Writes Entry tuples into an uncompressed PAX tar stream (core/paxtar.py)."""

    def add(self, arc: str, path: str | None, st: os.stat_result) -> None:
        if path is None:  # whiteout marker
            info = self.info(arc, st)
            info.type, info.mode, info.size = tarfile.REGTYPE, 0o600, 0
            self.tar.addfile(info)
            return
        self.entry(arc, st, xattr_headers(path), lambda: open(path, "rb"),  # noqa: SIM115
                   lambda: os.readlink(path))

    def write(self, entries: Iterator[Entry]) -> None:
        for arc, path, st in entries:
            self.add(arc, path, st)
