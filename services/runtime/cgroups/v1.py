"""cgroup v1: one directory per controller hierarchy under /sys/fs/cgroup/<ctrl>/."""

from __future__ import annotations

import os

from services.runtime.cgroups.files import (
    mkdir,
    prime_migration,
    read_pids,
    rmdir_retry,
    wait_for,
    write,
    write_limit,
)
from services.runtime.log import get_logger
from vocab.errors import FailedPrecondition

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from typing import Any

CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio",
               "hugetlb", "net_cls", "net_prio")


def device_rule(rule: dict[str, Any]) -> str:
    """An OCI device rule as a devices.allow/deny line: ``c 1:3 rwm``."""
    kind = rule.get("type") or "a"
    major = "*" if rule.get("major") in (None, -1) else str(rule["major"])
    minor = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
    access = rule.get("access") or "rwm"
    if kind == "a":
        return "a"
    return f"{kind} {major}:{minor} {access}"


class CgroupV1:
    def __init__(self, path: str, root: str) -> None:
        self.path = path
        self.root = root
        self.log = get_logger(cgroup=path)
        # Co-mounted controllers (cpu,cpuacct) share one hierarchy: keep one dir each.
        seen: dict[str, str] = {}
        self.dirs: dict[str, str] = {}
        self.where: dict[str, str] = {}  # every controller present -> its dir (co-mounted too)
        for ctrl in CONTROLLERS:
            base = os.path.join(root, ctrl)
            if not os.path.isdir(base):
                continue
            real = os.path.realpath(base)
            if real not in seen:
                seen[real] = self.dirs[ctrl] = os.path.join(base, path.lstrip("/"))
            self.where[ctrl] = seen[real]

    def create(self, resources: dict[str, Any]) -> None:
        for ctrl, path in self.dirs.items():
            if ctrl == "cpuset":
                self._make_cpuset()
            else:
                os.makedirs(path, exist_ok=True)
        prime_migration(self.root)  # for the join that follows
        self._limits(resources)

    def update(self, resources: dict[str, Any]) -> None:
        mem = resources.get("memory") or {}
        memsw = os.path.join(self.where["memory"], "memory.memsw.limit_in_bytes") \
            if "memory" in self.where else None
        if memsw is not None and os.path.exists(memsw) and mem.get("swap") is not None \
                and mem.get("limit") is not None and mem["limit"] > 0:
            # The kernel keeps memory+swap >= memory at every write: a limit that grows
            # past the old memory+swap needs the new memory+swap written first.
            current = int(_read(memsw).strip() or 0)
            if 0 < current < mem["limit"]:
                self._set("memory", "memory.memsw.limit_in_bytes", mem["swap"])
        self._limits(resources)

    def _make_cpuset(self) -> None:
        # A cpuset with empty cpus/mems refuses tasks: inherit them level by level.
        current = os.path.join(self.root, "cpuset")
        for part in (p for p in self.path.split("/") if p and p != "."):
            parent, current = current, os.path.join(current, part)
            mkdir(current)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not _read(os.path.join(current, name)).strip():
                    write(os.path.join(current, name),
                          _read(os.path.join(parent, name)).strip())

    def _set(self, ctrl: str, name: str, value: object) -> None:
        """Write a limit; one this host has no controller or file for fails create, as
        with runc and crun (a limit skipped with a warning would run unlimited)."""
        if ctrl not in self.where:
            raise FailedPrecondition(f"cgroup limit {name} = {value}: this host has no "
                                     f"{ctrl} cgroup controller")
        path = os.path.join(self.where[ctrl], name)
        if not os.path.exists(path):
            raise FailedPrecondition(f"cgroup limit {name} = {value}: the kernel has no "
                                     f"such {ctrl} cgroup file")
        write_limit(path, str(value))

    def _limits(self, res: dict[str, Any]) -> None:
        mem = res.get("memory") or {}
        if mem.get("limit") is not None:
            self._set("memory", "memory.limit_in_bytes", mem["limit"])
        if mem.get("swap") is not None and "memory" in self.dirs and \
                os.path.exists(os.path.join(self.dirs["memory"], "memory.memsw.limit_in_bytes")):
            self._set("memory", "memory.memsw.limit_in_bytes", mem["swap"])
        if mem.get("reservation") is not None:
            self._set("memory", "memory.soft_limit_in_bytes", mem["reservation"])
        if mem.get("kernel") is not None and "memory" in self.dirs and \
                os.path.exists(os.path.join(self.dirs["memory"], "memory.kmem.limit_in_bytes")):
            # Deprecated in the spec and gone from newer kernels (runc ignores it): best
            # effort, the one limit that may be missing.
            self._set("memory", "memory.kmem.limit_in_bytes", mem["kernel"])
        if mem.get("kernelTCP") is not None:
            self._set("memory", "memory.kmem.tcp.limit_in_bytes", mem["kernelTCP"])
        if mem.get("swappiness") is not None and 0 <= int(mem["swappiness"]) <= 100:
            self._set("memory", "memory.swappiness", mem["swappiness"])
        if mem.get("disableOOMKiller"):
            self._set("memory", "memory.oom_control", 1)
        pids = res.get("pids") or {}
        if pids.get("limit") is not None:
            limit = pids["limit"]
            self._set("pids", "pids.max", "max" if limit <= 0 else limit)
        cpu = res.get("cpu") or {}
        if cpu.get("shares"):
            self._set("cpu", "cpu.shares", cpu["shares"])
        if cpu.get("period"):
            self._set("cpu", "cpu.cfs_period_us", cpu["period"])
        if cpu.get("quota"):
            self._set("cpu", "cpu.cfs_quota_us", cpu["quota"])
        if cpu.get("cpus"):
            self._set("cpuset", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._set("cpuset", "cpuset.mems", cpu["mems"])
        self._blkio(res.get("blockIO") or {})
        for limit in res.get("hugepageLimits") or []:
            self._set("hugetlb", f"hugetlb.{limit['pageSize']}.limit_in_bytes", limit["limit"])
        net = res.get("network") or {}
        if net.get("classID") is not None:
            self._set("net_cls", "net_cls.classid", net["classID"])
        for prio in net.get("priorities") or []:
            self._set("net_prio", "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}")
        for rule in res.get("devices") or []:
            name = "devices.allow" if rule.get("allow") else "devices.deny"
            self._set("devices", name, device_rule(rule))

    def _blkio(self, blkio: dict[str, Any]) -> None:
        if blkio.get("weight"):
            self._set("blkio", "blkio.weight", blkio["weight"])
        if blkio.get("leafWeight"):
            self._set("blkio", "blkio.leaf_weight", blkio["leafWeight"])
        for dev in blkio.get("weightDevice") or []:
            where = f"{dev['major']}:{dev['minor']}"
            if dev.get("weight"):
                self._set("blkio", "blkio.weight_device", f"{where} {dev['weight']}")
            if dev.get("leafWeight"):
                self._set("blkio", "blkio.leaf_weight_device", f"{where} {dev['leafWeight']}")
        for key, name in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                          ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                          ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                          ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
            for dev in blkio.get(key) or []:
                self._set("blkio", name, f"{dev['major']}:{dev['minor']} {dev['rate']}")

    def join(self, pid: int) -> None:
        for path in self.dirs.values():
            write(os.path.join(path, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        for ctrl in ("pids", "memory", "freezer", "cpu"):
            if ctrl in self.dirs:
                return read_pids(os.path.join(self.dirs[ctrl], "cgroup.procs"))
        return []

    def destroy(self) -> None:
        for path in self.dirs.values():
            rmdir_retry(path)

    def freeze(self, frozen: bool) -> None:
        if "freezer" not in self.dirs:
            raise FailedPrecondition("the freezer cgroup controller is not available")
        state = os.path.join(self.dirs["freezer"], "freezer.state")
        wanted = "FROZEN" if frozen else "THAWED"
        write(state, wanted)
        wait_for(lambda: _read(state).strip(), wanted, wanted.lower())

    def mounts(self) -> list[tuple[str, str]]:
        return [(ctrl, path) for ctrl, path in self.dirs.items() if os.path.isdir(path)]


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()

