"""linux.rootfsPropagation: the container's "/" gets it, the host gets none of its mounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.runtime.bundle import edit
from tests.integration.runtime.conftest import Runtime


@pytest.mark.parametrize("propagation, tag", [("shared", "shared:"), ("private", "")])
def test_rootfs_propagation(muelle: Runtime, rootfs: Path, propagation: str,
                            tag: str) -> None:
    """linux.rootfsPropagation is the propagation of the container's "/"; runc 1.1.5 leaves
    "/" private whatever is asked."""
    runtime = muelle
    before = _mounts_under(rootfs)
    bundle = runtime.bundle("propagation", ["awk", "$5 == \"/\"", "/proc/self/mountinfo"],
                            rootfs)
    edit(bundle, lambda cfg: cfg["linux"].update(rootfsPropagation=propagation))
    proc = runtime.run("propagation", bundle)
    assert proc.returncode == 0, proc.stderr
    optional = proc.stdout.split(" - ")[0].split()[6:]
    assert [f for f in optional if f.startswith("shared:")] == (optional[:1] if tag else [])
    assert optional if tag else True
    assert _mounts_under(rootfs) == before  # nothing propagated to the host


def _mounts_under(rootfs: Path) -> list[str]:
    """The host's mount points at and in the rootfs: where the container's mounts (its /proc,
    /dev, ...) would show up had they propagated. Not every mount of the host: other
    engines and test sessions mount and unmount meanwhile."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted(p for p in points if p == str(rootfs) or p.startswith(f"{rootfs}/"))
