"""The host's device nodes for a privileged container's config.json (`linux.devices`).

Docker gives `--privileged` every device node under the host's /dev (containerd's
oci.HostDevices): a walk of /dev that skips the directories of other mounts (pts, shm,
mqueue), fd, the console (the runtime makes it with a terminal), symlinks and fifos.
"""

from __future__ import annotations

import os
import stat
from typing import Any

# Mount points and runtime-made entries in /dev, and LXD's / udev's private dirs.
SKIP_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """OCI LinuxDevice entries of every char and block device under ``root``, with the
    host's path, numbers, mode and owner; sorted by path."""
    out: list[dict[str, Any]] = []
    _walk(root, "/dev", out)
    return sorted(out, key=lambda d: d["path"])


def _walk(host_dir: str, container_dir: str, out: list[dict[str, Any]]) -> None:
    try:
        entries = list(os.scandir(host_dir))
    except OSError:
        return  # gone or unreadable meanwhile: what is there is what the host has
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        path = f"{container_dir}/{entry.name}"
        if stat.S_ISDIR(st.st_mode):
            if entry.name not in SKIP_DIRS:
                _walk(entry.path, path, out)
            continue
        if entry.name == "console":
            continue
        if stat.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            continue  # symlinks, fifos, sockets, files
        out.append({"path": path, "type": kind, "major": os.major(st.st_rdev),
                    "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
                    "uid": st.st_uid, "gid": st.st_gid})
