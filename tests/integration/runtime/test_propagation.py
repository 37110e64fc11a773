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
    with open("/proc/self/mountinfo") as f:
        before = f.read().count("\n")
    bundle = runtime.bundle("propagation", ["awk", "$5 == \"/\"", "/proc/self/mountinfo"],
                            rootfs)
    edit(bundle, lambda cfg: cfg["linux"].update(rootfsPropagation=propagation))
    proc = runtime.run("propagation", bundle)
    assert proc.returncode == 0, proc.stderr
    optional = proc.stdout.split(" - ")[0].split()[6:]
    assert [f for f in optional if f.startswith("shared:")] == (optional[:1] if tag else [])
    assert optional if tag else True
    with open("/proc/self/mountinfo") as f:
        assert f.read().count("\n") == before  # nothing propagated to the host
