"""Who may reach a container's files on the host (modes as in services/core/modes.py).

A container dir is root's alone (0700): its config.json holds the environment, with
whatever passwords were passed in it. A container with a user namespace of its own needs
its remapped root to traverse that dir (to its rootfs, hosts, resolv.conf) and its volumes'
dirs whenever the runtime creates it: those are root:<its root's host gid> 0710, set at
each create. Each volume's dir is 0700 otherwise; their data dirs keep the modes the
container gave them, as Docker's `_data` do.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from services.core import modes
from services.shim import userns as usernsmod
from services.shim.store import ContainerDir, Store, read_json
from services.shim.volumes import VolumeStore

# Bind-mounted into the container, read by its users: not secret, behind a 0700 dir.
# And the namespace pins (nsfs mounts: their mode is the kernel's, chmod is refused).
_LEAVE = {"hosts", "hostname", "resolv.conf", "netns", "userns"}


def root_gid(maps: usernsmod.Maps) -> int:
    """The host gid of the container's root group."""
    gid = usernsmod.to_host(maps[1], 0)
    return gid if gid is not None else maps[1][0][1]


def share(cdir: ContainerDir, maps: usernsmod.Maps | None,
          volume_records: Iterable[dict[str, Any]]) -> None:
    """Before a runtime create: the container's remapped root may traverse its dir and its
    volumes' dirs (nothing to do without a user namespace)."""
    if not maps:
        return
    gid = root_gid(maps)
    modes.share_with(cdir.path, gid)
    for record in volume_records:
        if record.get("type") == "volume" and record.get("source"):
            modes.share_with(Path(record["source"]).parent, gid)


def tighten_all(store: Store, volumes: VolumeStore) -> None:
    """At start: what an older version made with wider modes gets today's."""
    modes.tighten(store.root.parent, modes.TRAVERSE_DIR)
    modes.tighten(store.root, modes.TRAVERSE_DIR)
    for cdir in store.all():
        # 0710 keeps a user-namespaced container's group; a 0755 one becomes 0710 root:root
        # until its next create shares it (share() above).
        userns = bool((read_json(cdir.meta) or {}).get("userns"))
        modes.tighten(cdir.path, modes.SHARED_DIR if userns else modes.PRIVATE_DIR)
        for path in cdir.path.iterdir():
            if path.name in _LEAVE or path.is_dir():
                continue
            log = path.name.startswith(("container.log", "monitor.log"))
            modes.tighten(path, modes.LOG_FILE if log else modes.PRIVATE_FILE)
    modes.tighten(volumes.root, modes.TRAVERSE_DIR)
    for vdir in volumes.root.iterdir():
        if vdir.is_dir():
            modes.tighten(vdir, modes.SHARED_DIR)
            modes.tighten(vdir / "meta.json", modes.PRIVATE_FILE)
