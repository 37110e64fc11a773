"""/dev inside the container: the default device nodes, config devices and symlinks.

Runs before pivot_root, with paths resolved inside the rootfs.
"""

from __future__ import annotations

import os
import stat

from services.core.inroot import fd_path, join_in_root, open_in_root
from services.runtime import linux
from services.runtime.scoped import closing_fd, suppress
from vocab.errors import FailedPrecondition

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# runtime-spec config-linux.md "Default Devices": (name, major, minor)
DEFAULT = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0)]
SYMLINKS = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr")]
# Always allowed in the device cgroup after the config's rules, as runc does: mknod of
# anything, and rwm on the default nodes, /dev/pts/*, /dev/ptmx and /dev/net/tun.
CGROUP_ALLOW: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
      for ma, mi in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (136, None), (5, 2),
                     (10, 200))),
]
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _node(rootfs: str, path: str, kind: str, major: int, minor: int, mode: int,
          uid: int = 0, gid: int = 0) -> None:
    """mknod at ``path`` in the rootfs, relative to an fd of its directory (made in the
    rootfs), then chmod/chown through an O_PATH fd of the node: a symlink swapped in
    anywhere on the path is refused, never followed (core/inroot.py)."""
    joined = join_in_root(rootfs, path)
    name = os.path.basename(joined)
    if not name or joined == os.path.normpath(rootfs):
        raise FailedPrecondition(f"invalid device path {path!r}")
    parent = open_in_root(rootfs, "/" + os.path.relpath(os.path.dirname(joined), rootfs),
                          "dir")
    try:
        with suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent)  # unlinkat: the entry itself, never a target
        try:
            linux.mknod(name, _TYPES[kind] | mode, major, minor, dir_fd=parent)
        except PermissionError:
            # No CAP_MKNOD (e.g. a user namespace): bind the host node instead.
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW |
                             os.O_CLOEXEC, 0o644, dir_fd=parent))
            with _entry(parent, name, path, stat.S_ISREG) as target:
                linux.mount(f"/dev/{os.path.basename(path)}", fd_path(target), None,
                            linux.MS_BIND, label=path)
            return
        with _entry(parent, name, path, lambda m: stat.S_IFMT(m) == _TYPES[kind]) as node:
            os.chmod(fd_path(node), mode)
            os.chown(fd_path(node), uid, gid)
    finally:
        os.close(parent)


def _entry(parent: int, name: str, path: str, ok: Callable[[int], bool]) -> closing_fd:
    """An O_PATH fd of ``name`` in ``parent`` as just made, if it is of the kind ``ok``
    accepts (not a symlink swapped in since), closed when the ``with`` block ends; act on
    it through its /proc/self/fd link (fd_path)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        if not ok(os.fstat(fd).st_mode):
            raise FailedPrecondition(f"device {path} was replaced while it was made")
    except BaseException:
        os.close(fd)
        raise
    return closing_fd(fd)


def create(rootfs: str, devices: list[dict[str, Any]], terminal: bool) -> None:
    for name, major, minor in DEFAULT:
        _node(rootfs, f"/dev/{name}", "c", major, minor, 0o666)
    for spec_dev in devices:
        kind = spec_dev.get("type", "c")
        _node(rootfs, spec_dev["path"], kind if kind in _TYPES else "c",
              int(spec_dev.get("major", 0)), int(spec_dev.get("minor", 0)),
              int(spec_dev.get("fileMode", 0o666)) & 0o7777,
              int(spec_dev.get("uid", 0)), int(spec_dev.get("gid", 0)))
    dev = open_in_root(rootfs, "/dev", "dir")
    try:
        for target, name in [*SYMLINKS, ("pts/ptmx", "ptmx")]:
            if _exists(name, dev):
                if name != "ptmx":
                    continue
                os.unlink(name, dir_fd=dev)
            os.symlink(target, name, dir_fd=dev)
        if os.path.exists("/proc/kcore") and not _exists("core", dev):
            os.symlink("/proc/kcore", "core", dir_fd=dev)
        if terminal:
            _console(dev)
    finally:
        os.close(dev)


def _exists(name: str, parent: int) -> bool:
    try:
        os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _console(dev: int) -> None:
    """With a terminal, /dev/console is a bind of the pty on our stdin (0600 root)."""
    with suppress(OSError):
        tty = os.ttyname(0)
        if not _exists("console", dev):
            os.close(os.open("console", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW |
                             os.O_CLOEXEC, 0o600, dir_fd=dev))
        with _entry(dev, "console", "/dev/console", stat.S_ISREG) as console:
            os.chmod(fd_path(console), 0o600)
            linux.mount(tty, fd_path(console), None, linux.MS_BIND, label="/dev/console")
