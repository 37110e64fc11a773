"""A container's /dev/shm on the host, for an IPC namespace that others join.

A container whose ipc_mode is "shareable" (Docker's `--ipc shareable`, a CRI pod's infra
container) gets its /dev/shm from a tmpfs the shim mounts at ``<container dir>/shm``; a
container that joins its IPC namespace (``container:<id>``) binds the same tmpfs, so POSIX
shared memory is shared along with System V IPC, as Docker and containerd do. A bind of
the other container's own /dev/shm through /proc/<pid>/root is not possible: the kernel
refuses binds from another mount namespace (EINVAL). The tmpfs lives from create to
delete, across restarts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.runtime.api import linux
from services.shim import mounts
from services.shim.store import ContainerDir
from vocab.errors import FailedPrecondition

SHAREABLE = "shareable"


def path(cdir: ContainerDir) -> Path:
    return cdir.path / "shm"


def make(cdir: ContainerDir, size: int) -> str:
    """Mount the container's shareable /dev/shm; its host path."""
    target = path(cdir)
    target.mkdir(exist_ok=True)
    linux.mount("shm", str(target), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV |
                linux.MS_NOEXEC, f"mode=1777,size={size}")
    return str(target)


def of_peer(peer: ContainerDir) -> str:
    """The shareable /dev/shm of the container whose IPC namespace is joined."""
    target = path(peer)
    if not mounts.is_mounted(str(target)):
        raise FailedPrecondition(f"cannot share the /dev/shm of container {peer.id[:12]}: "
                                 "its IPC namespace is not shareable (create it with ipc "
                                 "mode shareable)")
    return str(target)


def use(config: dict[str, Any], source: str) -> None:
    """config.json's /dev/shm becomes a bind of ``source``."""
    for m in config["mounts"]:
        if m["destination"] == "/dev/shm":
            m.update(type="bind", source=source,
                     options=["rbind", "nosuid", "noexec", "nodev"])


def remove(cdir: ContainerDir) -> None:
    if path(cdir).exists():
        mounts.unmount(str(path(cdir)))  # lazily when a joiner still holds it
