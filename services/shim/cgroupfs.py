"""What the shim reads straight from a container's cgroup instead of asking the runtime.

``<runtime> state`` is a process per call (~50 ms for muelle-runtime); whether a running
container is paused is a file read: runc and crun pause by freezing the cgroup.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def frozen(cgroups_path: str, root: Path = ROOT) -> bool:
    """Whether the container's cgroup is frozen: v1 ``freezer.state`` FROZEN or FREEZING,
    v2 ``cgroup.freeze`` 1. False when the cgroup is gone or unreadable."""
    rel = cgroups_path.strip("/")
    if not rel:
        return False
    for path, frozen_values in ((root / "freezer" / rel / "freezer.state", ("FROZEN", "FREEZING")),
                                (root / rel / "cgroup.freeze", ("1",))):
        try:
            return path.read_text().strip() in frozen_values
        except OSError:
            continue
    return False
