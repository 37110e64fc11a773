"""meta.json of a container, typed: what the shim keeps about it beside the bundle.

Written once by create (first marked ``creating``, the marker dropped once the runtime
made the container) and changed after only by ``start``/``stop`` (``manually_stopped``)
and the restart policy (``restart_count``). The JSON on disk is the one earlier shims
wrote, key for key, so a shim restarted onto older containers reads them back (live
restore), and a key it does not know is kept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from services.shim.store import ContainerDir, write_json
from services.shim.userns import Maps


@dataclass
class Meta:
    runtime: str = ""
    created_at: str = ""
    cgroups_path: str = ""
    own_pid_ns: bool = False  # its processes die with its init (delete may unmount early)
    log_max_size: int = 0
    log_max_files: int = 0
    restart_policy: str = ""
    rootfs: list[dict[str, Any]] = field(default_factory=list)  # types.v1 Mount fields
    volumes: list[dict[str, Any]] = field(default_factory=list)  # volume_mounts records
    userns: list[list[list[int]]] | None = None  # [uid ranges, gid ranges]
    stdin: dict[str, Any] | None = None  # {"once": bool} with -i
    terminal: bool = False
    creating: bool = False  # until the runtime made it: restore drops such leftovers
    manually_stopped: bool = False
    restart_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # keys of another shim version

    def to_json(self) -> dict[str, Any]:
        """The dict on disk: optional keys only when set, as they always were."""
        out: dict[str, Any] = {
            "runtime": self.runtime, "created_at": self.created_at,
            "cgroups_path": self.cgroups_path, "own_pid_ns": self.own_pid_ns,
            "log_max_size": self.log_max_size, "log_max_files": self.log_max_files,
            "restart_policy": self.restart_policy, "rootfs": self.rootfs,
            "volumes": self.volumes, **self.extra,
        }
        for key in ("userns", "stdin", "terminal", "creating", "manually_stopped",
                    "restart_count"):
            value = getattr(self, key)
            if value:  # absent reads as false, as every reader's .get(key, default) did
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Meta:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    @classmethod
    def read(cls, cdir: ContainerDir) -> Meta | None:
        """The container's meta, or None if it has none (yet)."""
        data = cdir.read_meta()
        return cls.from_json(data) if data else None

    def write(self, cdir: ContainerDir, durable: bool = True) -> None:
        write_json(cdir.meta, self.to_json(), durable=durable)

    def maps(self) -> Maps | None:
        """The user namespace maps (JSON lists back into tuples)."""
        if not self.userns:
            return None
        uids, gids = self.userns
        return (tuple((r[0], r[1], r[2]) for r in uids),
                tuple((r[0], r[1], r[2]) for r in gids))
