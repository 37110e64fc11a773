"""/dev inside the container: the default device nodes, config devices and symlinks.

Runs before pivot_root, with paths resolved inside the rootfs.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any

from services.runtime import linux
from services.runtime.paths import make_target, secure_join

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
    dest = secure_join(rootfs, path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.lexists(dest):
        os.unlink(dest)
    try:
        linux.mknod(dest, _TYPES[kind] | mode, major, minor)
    except PermissionError:
        # No CAP_MKNOD (e.g. a user namespace): bind the host node instead.
        make_target(dest, False)
        host = f"/dev/{os.path.basename(path)}"
        linux.mount(host, dest, None, linux.MS_BIND)
        return
    os.chmod(dest, mode)
    os.chown(dest, uid, gid)


def create(rootfs: str, devices: list[dict[str, Any]], terminal: bool) -> None:
    for name, major, minor in DEFAULT:
        _node(rootfs, f"/dev/{name}", "c", major, minor, 0o666)
    for spec_dev in devices:
        kind = spec_dev.get("type", "c")
        _node(rootfs, spec_dev["path"], kind if kind in _TYPES else "c",
              int(spec_dev.get("major", 0)), int(spec_dev.get("minor", 0)),
              int(spec_dev.get("fileMode", 0o666)) & 0o7777,
              int(spec_dev.get("uid", 0)), int(spec_dev.get("gid", 0)))
    dev = secure_join(rootfs, "/dev")
    for target, name in [*SYMLINKS, ("pts/ptmx", "ptmx")]:
        link = os.path.join(dev, name)
        if os.path.lexists(link):
            if name != "ptmx":
                continue
            os.unlink(link)
        os.symlink(target, link)
    if os.path.exists("/proc/kcore") and not os.path.lexists(os.path.join(dev, "core")):
        os.symlink("/proc/kcore", os.path.join(dev, "core"))
    if terminal:
        _console(dev)


def _console(dev: str) -> None:
    """With a terminal, /dev/console is a bind of the pty on our stdin (0600 root)."""
    with contextlib.suppress(OSError):
        tty = os.ttyname(0)
        console = os.path.join(dev, "console")
        make_target(console, False)
        os.chmod(console, 0o600)
        linux.mount(tty, console, None, linux.MS_BIND)
