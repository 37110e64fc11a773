"""cgroup v2: one directory in the unified hierarchy, controllers enabled top-down."""

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

WANTED = ("cpu", "cpuset", "io", "memory", "pids", "hugetlb")


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (the OCI convention)."""
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


class CgroupV2:
    def __init__(self, path: str, root: str) -> None:
        self.path = path
        self.root = root
        self.dir = os.path.join(root, path.lstrip("/"))
        self.log = get_logger(cgroup=path)

    def create(self, resources: dict[str, Any]) -> None:
        current = self.root
        for part in (p for p in self.path.split("/") if p and p != "."):
            with open(os.path.join(current, "cgroup.controllers")) as f:
                available = set(f.read().split())
            enable = " ".join(f"+{c}" for c in WANTED if c in available)
            if enable:
                try:
                    write(os.path.join(current, "cgroup.subtree_control"), enable)
                except OSError as exc:
                    self.log.warning("cannot enable controllers", dir=current, error=str(exc))
            current = os.path.join(current, part)
            mkdir(current)
        prime_migration(self.root)  # for the join that follows
        self._limits(resources)

    def update(self, resources: dict[str, Any]) -> None:
        self._limits(resources)  # v2 checks memory.max and memory.swap.max apart

    def _set(self, name: str, value: object) -> None:
        """Write a limit; one this host has no file for (its controller is missing or not
        enabled) fails create, as with runc and crun."""
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            raise FailedPrecondition(f"cgroup limit {name} = {value}: no such cgroup file "
                                     "(is its controller available?)")
        write_limit(path, str(value))

    def _limits(self, res: dict[str, Any]) -> None:
        mem = res.get("memory") or {}
        limit = mem.get("limit")
        if limit is not None:
            self._set("memory.max", "max" if limit < 0 else limit)
        swap = mem.get("swap")
        if swap is not None and os.path.exists(os.path.join(self.dir, "memory.swap.max")):
            # Without swap accounting there is no file: as on v1 (memsw), not an error.
            # OCI swap is memory+swap; v2 counts swap alone.
            value = "max" if swap < 0 else max(0, swap - (limit or 0))
            self._set("memory.swap.max", value)
        if mem.get("reservation") is not None:
            self._set("memory.low", mem["reservation"])
        pids = res.get("pids") or {}
        if pids.get("limit") is not None:
            self._set("pids.max", "max" if pids["limit"] <= 0 else pids["limit"])
        cpu = res.get("cpu") or {}
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota")
            quota_s = "max" if not quota or quota < 0 else str(quota)
            self._set("cpu.max", f"{quota_s} {cpu.get('period') or 100000}")
        if cpu.get("shares"):
            self._set("cpu.weight", shares_to_weight(cpu["shares"]))
        if cpu.get("cpus"):
            self._set("cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._set("cpuset.mems", cpu["mems"])
        for limit in res.get("hugepageLimits") or []:
            self._set(f"hugetlb.{limit['pageSize']}.max", limit["limit"])
        if res.get("network"):
            raise FailedPrecondition("linux.resources.network: cgroup v2 has no net_cls or "
                                     "net_prio controller")
        for key, value in (res.get("unified") or {}).items():
            if "/" in key or key.startswith("."):
                continue
            self._set(key, value)
        if res.get("devices"):
            # v2 device control needs an eBPF program; not implemented yet.
            self.log.info("cgroup v2 device rules not enforced")

    def join(self, pid: int) -> None:
        write(os.path.join(self.dir, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        return read_pids(os.path.join(self.dir, "cgroup.procs"))

    def destroy(self) -> None:
        rmdir_retry(self.dir)

    def freeze(self, frozen: bool) -> None:
        write(os.path.join(self.dir, "cgroup.freeze"), "1" if frozen else "0")

        def state() -> str:
            with open(os.path.join(self.dir, "cgroup.events")) as f:
                lines = f.read().splitlines()
            for line in lines:
                if line.startswith("frozen "):
                    return line.split()[1]
            return ""

        wait_for(state, "1" if frozen else "0", "frozen" if frozen else "thawed")

    def mounts(self) -> list[tuple[str, str]]:
        return [("", self.dir)]
