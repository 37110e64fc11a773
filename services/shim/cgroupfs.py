"""What the shim reads straight from a container's cgroup instead of asking the runtime.

``<runtime> state`` is a process per call (~50 ms for muelle-runtime); whether a running
container is paused is a file read: runc, crun and muelle-runtime pause by freezing the
cgroup (the same check muelle-runtime's own ``state`` makes).
"""

from __future__ import annotations

from pathlib import Path

from services.runtime.api import is_frozen

ROOT = Path("/sys/fs/cgroup")


def frozen(cgroups_path: str, root: Path = ROOT) -> bool:
    """Whether the container's cgroup is frozen (paused)."""
    return is_frozen(cgroups_path, root)
