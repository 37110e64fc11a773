"""What the shim tells about a container: its status, read from the container dir (no
runtime process is asked), and the runtimes it can run containers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.shim import cgroupfs
from services.shim.meta import Meta
from services.shim.store import ContainerDir, read_json


@dataclass
class Status:
    id: str
    status: str
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    created_at: str = ""
    started_at: str = ""
    finished_at: str = ""
    runtime: str = ""
    bundle: str = ""
    error: str = ""
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    restart_count: int = 0
    # Fixed at create (meta.json): `stats` reads the cgroup of every container from the
    # cached statuses without opening each one's meta.json again.
    cgroups_path: str = ""


@dataclass
class RuntimeInfo:
    name: str
    path: str
    version: str


def read(cdir: ContainerDir, meta: Meta, monitor_alive: bool) -> Status:
    """The status from the run's files: status.json (the monitor recorded the exit),
    started.json, init.pid, and the cgroup's freezer (paused)."""
    out = Status(id=cdir.id, status="created", created_at=meta.created_at,
                 restart_count=int(meta.restart_count or 0), runtime=meta.runtime,
                 bundle=str(cdir.path), volume_mounts=list(meta.volumes or []),
                 cgroups_path=meta.cgroups_path or "")
    started = read_json(cdir.started) or {}
    out.started_at = started.get("started_at", "")
    exited = cdir.read_status()
    if exited is not None:
        out.status = "stopped"
        out.exit_code = int(exited.get("exit_code", 0))
        out.oom_killed = bool(exited.get("oom_killed", False))
        out.finished_at = exited.get("finished_at", "")
        out.error = exited.get("error", "")
        return out
    if not monitor_alive:
        # The monitor died before recording an exit (killed, or the host rebooted).
        out.status = "stopped"
        out.exit_code = 255
        out.error = "the container's monitor exited without recording its status"
        return out
    out.pid = cdir.read_pid(cdir.init_pid)
    out.status = "running" if out.started_at else "created"
    if out.started_at and cgroupfs.frozen(meta.cgroups_path or ""):
        out.status = "paused"  # runc/crun pause = a frozen cgroup: no `state` process
    return out
