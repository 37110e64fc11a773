"""Container cgroups behind one interface, with a v1 and a v2 implementation.

    cg = cgroups.for_path("/muelle/abc")   # picks v1 or v2 from the host
    cg.create(spec["linux"].get("resources") or {})
    cg.join(pid); cg.pids(); cg.destroy()
"""

from __future__ import annotations

import os

# The file helpers live in files.py, which v1 and v2 import (not this package: that
# made a cycle); they are re-exported here for the runtime's other modules.
from services.runtime.cgroups.files import (
    ROOT,
    own_procs,
    own_procs_file,
    prime_migration,
    read_pids,
    rmdir_retry,
    wait_for,
    write,
    write_limit,
)
from vocab.errors import InvalidArgument

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:  # typing costs every create ~8 ms to import (with re, collections...)
    from typing import Any, Protocol
else:
    Protocol = object  # Cgroup is only ever a type: at run time a plain class will do

__all__ = ["ROOT", "Cgroup", "for_path", "is_frozen", "is_v2", "normalise", "own_procs",
           "own_procs_file", "prime_migration", "read_pids", "rmdir_retry", "wait_for",
           "write", "write_limit"]


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

    def mounts(self) -> list[tuple[str, str]]:
        """(name under /sys/fs/cgroup, host directory) pairs to show inside the container."""

    def freeze(self, frozen: bool) -> None:
        """Freeze (pause) or thaw every process of the cgroup; returns once done."""

    def update(self, resources: dict[str, Any]) -> None:
        """Write changed limits into the existing cgroup (`update` of a running one)."""


def is_v2(root: str | os.PathLike[str] = ROOT) -> bool:
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def normalise(path: str, cid: str) -> str:
    """The absolute cgroup path of a container (default ``/<id>``)."""
    if not path:
        return f"/{cid}"
    if ":" in path:
        raise InvalidArgument(f"cgroupsPath {path!r}: the systemd cgroup driver is not supported")
    return "/" + path.strip("/")


def for_path(path: str, root: str | os.PathLike[str] = ROOT) -> Cgroup:
    from services.runtime.cgroups import v1, v2

    if is_v2(root):
        return v2.CgroupV2(path, os.fspath(root))
    return v1.CgroupV1(path, os.fspath(root))


def is_frozen(path: str, root: str | os.PathLike[str] = ROOT) -> bool:
    """Whether the cgroup is frozen: v1 ``freezer.state`` FROZEN or FREEZING, v2
    ``cgroup.freeze`` 1. False when the cgroup is gone or unreadable."""
    rel = path.strip("/")
    if not rel:
        return False
    for file, frozen in ((os.path.join(root, "freezer", rel, "freezer.state"),
                          ("FROZEN", "FREEZING")),
                         (os.path.join(root, rel, "cgroup.freeze"), ("1",))):
        try:
            with open(file) as f:
                return f.read().strip() in frozen
        except OSError:
            continue
    return False
