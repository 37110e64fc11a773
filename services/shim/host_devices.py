"""The host's device nodes for a privileged container's config.json (`linux.devices`).

Docker gives `--privileged` every device node under the host's /dev (containerd's
oci.HostDevices): a walk of /dev that skips the directories of other mounts (pts, shm,
mqueue), fd, the console (the runtime makes it with a terminal), symlinks and fifos.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from vocab.errors import InvalidArgument

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


def mapped_devices(host_path: str, container_path: str,
                   permissions: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """docker --device: (linux.devices entries, device cgroup rules) of a device node, or
    of every one under a directory, at ``container_path`` (dockerd's DevicesFromPath: a
    symlink is followed once; under a directory, what is not a device is skipped).
    InvalidArgument with dockerd's message when there is none."""
    resolved = os.path.realpath(host_path) if os.path.islink(host_path) else host_path
    devices: list[dict[str, Any]] = []
    try:
        st = os.stat(resolved, follow_symlinks=False)
    except OSError as exc:
        raise _gathering(host_path, (exc.strerror or str(exc)).lower()) from None
    if stat.S_ISDIR(st.st_mode):
        for dirpath, dirnames, filenames in os.walk(resolved):
            dirnames.sort()
            for name in sorted(filenames):  # links are skipped (lstat), as dockerd's
                path = os.path.join(dirpath, name)
                entry = _device(path, container_path + path[len(resolved):])
                if entry is not None:
                    devices.append(entry)
    else:
        entry = _device(resolved, container_path)
        if entry is not None:
            devices.append(entry)
    if not devices:
        raise _gathering(host_path, "not a device node")
    rules = [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"],
              "access": permissions} for d in devices]
    return devices, rules


def _device(path: str, container_path: str) -> dict[str, Any] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {"path": container_path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


def _gathering(host_path: str, why: str) -> InvalidArgument:
    return InvalidArgument("error gathering device information while adding custom device "
                           f'"{host_path}": {why}')
