"""`update`: change a container's resource limits (docker update, CRI
UpdateContainerResources) in its bundle, for later starts, and in its live cgroup.

The cgroup is written by the shim itself, not by ``<runtime> update``: muelle-runtime has
no ``update``, and runc, crun and muelle-runtime lay a container's cgroup out the same way
(cgroupfs at its ``cgroupsPath``), so one writer serves all three.
"""

from __future__ import annotations

from typing import Any

from muelle.shim.v1 import shim_pb2

from services.runtime import api
from services.shim import spec
from services.shim.store import ContainerDir, read_json, write_json
from vocab.errors import InvalidArgument


def changes(res: shim_pb2.Resources) -> dict[str, Any]:
    """The OCI ``linux.resources`` entries the set fields of ``res`` change, checked as
    Create checks them. A memory limit without memory+swap gets create's default (twice
    the limit), so the two stay consistent."""
    if res.pids_limit < -1:
        raise InvalidArgument("pids limit must be -1 (unlimited) or more")
    if res.cpu_quota < -1 or res.cpu_period < 0 or res.cpu_shares < 0:
        raise InvalidArgument("CPU quota, period and shares must not be negative")
    if res.memory_swap and not res.memory_limit:
        # create's check would say "always set the memory limit"; an update may change
        # memory+swap alone when the container has a memory limit: checked on merge.
        out = spec.resources(shim_pb2.Resources(
            cpu_quota=res.cpu_quota, cpu_period=res.cpu_period, cpu_shares=res.cpu_shares,
            cpuset_cpus=res.cpuset_cpus, cpuset_mems=res.cpuset_mems), privileged=False)
        out["memory"] = {"swap": res.memory_swap}
    else:
        out = spec.resources(res, privileged=False)
    out.pop("devices", None)  # the device rules are create's, never changed here
    if res.pids_limit == -1:
        out["pids"] = {"limit": -1}
    if res.cpu_quota == -1:
        out.setdefault("cpu", {})["quota"] = -1
    return out


def merged(current: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``current`` linux.resources with ``change``'s entries over it (one level deep:
    memory, cpu, pids are objects whose keys change one by one)."""
    out = dict(current)
    for key, value in change.items():
        out[key] = {**(out.get(key) or {}), **value} if isinstance(value, dict) else value
    memory = out.get("memory") or {}
    limit, swap = memory.get("limit") or 0, memory.get("swap") or 0
    if swap > 0 and limit <= 0:
        raise InvalidArgument("memory+swap limit without a memory limit: set the memory "
                              "limit too")
    if swap > 0 and limit > swap:
        raise InvalidArgument("minimum memoryswap limit should be larger than memory limit")
    return out


def to_message(resources: dict[str, Any]) -> shim_pb2.Resources:
    memory, cpu = resources.get("memory") or {}, resources.get("cpu") or {}
    return shim_pb2.Resources(
        memory_limit=max(0, memory.get("limit") or 0), memory_swap=memory.get("swap") or 0,
        pids_limit=max(0, (resources.get("pids") or {}).get("limit") or 0),
        cpu_quota=max(0, cpu.get("quota") or 0), cpu_period=cpu.get("period") or 0,
        cpu_shares=cpu.get("shares") or 0, cpuset_cpus=cpu.get("cpus") or "",
        cpuset_mems=cpu.get("mems") or "")


def apply(cdir: ContainerDir, res: shim_pb2.Resources, cgroups_path: str,
          live: bool) -> shim_pb2.Resources:
    """Change the bundle's limits and, when ``live`` (the container has processes), its
    cgroup's: the cgroup first, so a value the kernel refuses leaves the bundle as it
    was. The caller holds the container's lock."""
    change = changes(res)
    config = read_json(cdir.config) or {}
    linux = config.setdefault("linux", {})
    new = merged(linux.get("resources") or {}, change)
    if live and change:
        api.update_cgroup(cgroups_path, cdir.id, change_for_cgroup(change, new))
    linux["resources"] = new
    write_json(cdir.config, config, what=f"the bundle of container {cdir.id}")
    return to_message(new)


def change_for_cgroup(change: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What to write into the cgroup: the changed entries, with the memory pair whole
    (v1 writes memory+swap beside memory; v2 derives swap from both)."""
    out = dict(change)
    if "memory" in change:
        out["memory"] = dict(new.get("memory") or {})
    if "cpu" in change and ("quota" in change["cpu"] or "period" in change["cpu"]):
        cpu = new.get("cpu") or {}
        out["cpu"] = {**change["cpu"], **{k: cpu[k] for k in ("quota", "period") if k in cpu}}
    return out
