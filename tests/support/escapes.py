"""A hostile rootfs for every in-rootfs path resolver: paths that mean ``/host`` inside it.

Each path in ``ESCAPES`` names the directory ``/host`` when the rootfs is taken as "/", but
would leave the rootfs if ``..`` were allowed to climb above it or a symlink were followed on
the host. Odd and even counts of ``..`` both appear on purpose: a resolver that *keeps* a
``..`` at the root instead of dropping it lets two of them cancel out, so only an odd count
(or a one-level ``..`` link) exposes it. The directory just outside the rootfs has a
``host/`` of its own, so a one-level escape reaches a real directory with a real file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.core import inroot

INSIDE = b"inside:x:0:0::/:/bin/sh\n"
OUTSIDE = b"outside:x:0:0::/:/bin/sh\n"

ESCAPES = [
    "../host", "../../host", "../../../host", "/../host", "/../../host", "/../../../host",
    "/etc/../../host", "/etc/../../../host", "etc/../../../../host",
    "/up1/host", "/up2/host", "/up3/host",  # links: ".." at the root, "../..", "../../.."
    "/hostlink",  # link "../host" at the root: one level out
    "/etc/hostlink",  # link "../../host" in /etc: one level out
    "/etc/abslink",  # link "/../host": an absolute target that climbs at once
    "/etc/deep/uplink/host",  # link "../../../.." two levels below the root
]


@dataclass
class Layout:
    root: Path  # the rootfs
    outside: list[Path]  # the host's "host" directories a resolver must never reach

    def untouched(self) -> bool:
        """Nothing was written next to the host's marker files."""
        return all(sorted(os.listdir(d)) == ["passwd"] for d in self.outside)


def build(tmp: Path) -> Layout:
    """``tmp/a/b/rootfs`` with escape links; ``host/passwd`` inside (INSIDE) and, above the
    rootfs at every level an escape could reach, a host ``host/passwd`` (OUTSIDE)."""
    root = tmp / "a" / "b" / "rootfs"
    (root / "etc" / "deep").mkdir(parents=True)
    (root / "host").mkdir()
    (root / "host" / "passwd").write_bytes(INSIDE)
    outside = [tmp / "a" / "b" / "host", tmp / "a" / "host", tmp / "host"]
    for d in outside:
        d.mkdir()
        (d / "passwd").write_bytes(OUTSIDE)
    (root / "up1").symlink_to("..")
    (root / "up2").symlink_to("../..")
    (root / "up3").symlink_to("../../..")
    (root / "hostlink").symlink_to("../host")
    (root / "etc" / "hostlink").symlink_to("../../host")
    (root / "etc" / "abslink").symlink_to("/../host")
    (root / "etc" / "deep" / "uplink").symlink_to("../../../..")
    return Layout(root, outside)


@pytest.fixture(params=["openat2", "walk"])
def resolver_way(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test once with the kernel's openat2(RESOLVE_IN_ROOT) and once with the safe
    walk (services/core/inroot.py), so both give the same answers to every escape."""
    if request.param == "openat2" and not inroot.has_openat2():
        pytest.skip("this kernel has no openat2 (before 5.6): only the walk can run")
    saved = inroot.use_openat2
    inroot.use_openat2 = request.param == "openat2"
    try:
        yield request.param
    finally:
        inroot.use_openat2 = saved
