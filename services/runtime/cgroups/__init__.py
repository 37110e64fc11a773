"""Container cgroups behind one interface, with a v1 and a v2 implementation.

    cg = cgroups.for_path("/muelle/abc")   # picks v1 or v2 from the host
    cg.create(spec["linux"].get("resources") or {})
    cg.join(pid); cg.pids(); cg.destroy()
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Protocol

from services.core.errors import InvalidArgument

ROOT = Path("/sys/fs/cgroup")


class Cgroup(Protocol):
    path: str

    def create(self, resources: dict[str, Any]) -> None:
        """Make the directories and write the limits."""

    def join(self, pid: int) -> None:
        """Move ``pid`` (0 = the caller) into the cgroup."""

    def pids(self) -> list[int]:
        """The processes still in the cgroup."""

    def destroy(self) -> None:
        """Remove the directories (the cgroup must be empty)."""

    def mounts(self) -> list[tuple[str, Path]]:
        """(name under /sys/fs/cgroup, host directory) pairs to show inside the container."""


def is_v2(root: Path = ROOT) -> bool:
    return (root / "cgroup.controllers").exists()


def normalise(path: str, cid: str) -> str:
    """The absolute cgroup path of a container (default ``/<id>``)."""
    if not path:
        return f"/{cid}"
    if ":" in path:
        raise InvalidArgument(f"cgroupsPath {path!r}: the systemd cgroup driver is not supported")
    return "/" + path.strip("/")


def for_path(path: str, root: Path = ROOT) -> Cgroup:
    from services.runtime.cgroups import v1, v2

    if is_v2(root):
        return v2.CgroupV2(path, root)
    return v1.CgroupV1(path, root)


def write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (OSError, ValueError):
        return []


def rmdir_retry(path: Path, tries: int = 50) -> None:
    """rmdir a cgroup dir: exiting tasks may linger a moment (EBUSY)."""
    for _ in range(tries):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != 16:  # EBUSY
                raise
            time.sleep(0.02)
    os.rmdir(path)
