"""Compare two directory trees entry by entry, for unpack oracle tests.

    diffs = compare_trees(muelle_rootfs, umoci_rootfs)
    assert not diffs, "\\n".join(diffs)

Each entry is described by: type, permission bits (with setuid/setgid/sticky), uid, gid,
size and content sha256 (regular files), symlink target, device numbers, xattrs (every
namespace readable here, security.capability included; overlayfs's own
``trusted.overlay.*`` are ignored: a mounted overlay hides them anyway), mtime (seconds;
directories optional, see ``dir_mtimes``) and hardlink group (the other names of the same
inode inside the tree). A difference reads ``path: field: left != right``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path

_TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
          stat.S_IFCHR: "char", stat.S_IFBLK: "block", stat.S_IFIFO: "fifo",
          stat.S_IFSOCK: "socket"}


@dataclass
class Node:
    type: str
    mode: str  # octal permission bits, "4755"
    uid: int
    gid: int
    size: int | None = None
    sha256: str | None = None
    target: str | None = None
    device: tuple[int, int] | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)
    mtime: int | None = None
    links: tuple[str, ...] = ()  # other names of this inode in the tree


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _xattrs(path: str) -> dict[str, bytes]:
    out = {}
    for key in sorted(os.listxattr(path, follow_symlinks=False)):
        if key.startswith("trusted.overlay."):
            continue
        out[key] = os.getxattr(path, key, follow_symlinks=False)
    return out


def scan(root: Path, dir_mtimes: bool = True) -> dict[str, Node]:
    """Every entry under ``root`` ("." is the root itself), described as a Node."""
    nodes: dict[str, Node] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    base = str(root)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in [None, *sorted(dirnames + filenames)]:
            if name is None:
                if dirpath != base:
                    continue  # a directory is described by its parent's listing
                full, rel = base, "."
            else:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, base)
            st = os.lstat(full)
            kind = _TYPES[stat.S_IFMT(st.st_mode)]
            node = Node(kind, f"{stat.S_IMODE(st.st_mode):04o}", st.st_uid, st.st_gid,
                        xattrs=_xattrs(full))
            if kind != "dir" or dir_mtimes:
                node.mtime = int(st.st_mtime)
            if kind == "file":
                node.size, node.sha256 = st.st_size, _sha256(full)
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif kind == "symlink":
                node.target = os.readlink(full)
                node.mode = ""  # symlink permissions mean nothing on Linux
            elif kind in ("char", "block"):
                node.device = (os.major(st.st_rdev), os.minor(st.st_rdev))
            nodes[rel] = node
    for group in inodes.values():
        for rel in group:
            nodes[rel].links = tuple(sorted(p for p in group if p != rel))
    return nodes


def compare_scans(left: dict[str, Node], right: dict[str, Node],
                  names: tuple[str, str] = ("left", "right")) -> list[str]:
    """Readable differences between two scans, sorted by path."""
    diffs = []
    for rel in sorted(set(left) | set(right)):
        a, b = left.get(rel), right.get(rel)
        if a is None or b is None:
            only = names[0] if b is None else names[1]
            node = a or b
            assert node is not None
            diffs.append(f"{rel}: only in {only} ({node.type})")
            continue
        for f in fields(Node):
            va, vb = getattr(a, f.name), getattr(b, f.name)
            if va != vb:
                diffs.append(f"{rel}: {f.name}: {names[0]} {va!r} != {names[1]} {vb!r}")
    return diffs


def compare_trees(left: Path, right: Path, dir_mtimes: bool = True,
                  names: tuple[str, str] = ("left", "right")) -> list[str]:
    """Readable differences between the trees at ``left`` and ``right``."""
    return compare_scans(scan(left, dir_mtimes), scan(right, dir_mtimes), names)
