"""Exact unpack: a multi-layer image exercising every layer feature (whiteouts, opaque dirs,
hardlinks, symlinks, devices, fifos, setuid/setgid/sticky, owners, mtimes, xattrs with
security.capability, a directory whose mode a later layer changes, a file that becomes a
directory) is unpacked by `umoci unpack` and by muelle; the rootfs muelle mounts for a
container must equal umoci's entry by entry (tests/support/oracle.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.images import Entry, Layer, build_layout, busybox_layer, push_layout
from tests.support.oracle import compare_trees
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.root

T1, T2, T3 = 1600000000, 1650000000, 1690000000
# VFS_CAP_REVISION_2, effective, cap_net_raw (13) permitted: what `setcap cap_net_raw+ep` writes
CAP_NET_RAW = bytes.fromhex("01000002") + (1 << 13).to_bytes(4, "little") + bytes(12)


def layers() -> list[Layer]:
    base = busybox_layer([
        Entry("data", "dir", mode=0o755, mtime=T1),
        Entry("data/file", data=b"content\n", mtime=T1),
        Entry("data/hl-same", "hardlink", target="data/file"),
        Entry("data/suid", data=b"s", mode=0o4755, mtime=T1),
        Entry("data/sgid", data=b"g", mode=0o2711, uid=0, gid=10, mtime=T1),
        Entry("data/sticky", "dir", mode=0o1777, mtime=T1),
        Entry("data/cap", data=b"ping", mode=0o755, mtime=T1,
              xattrs={"security.capability": CAP_NET_RAW}),
        Entry("data/user-x", data=b"x", mtime=T1, xattrs={"user.muelle.test": b"value"}),
        Entry("data/owned", data=b"o", uid=1000, gid=1000, mode=0o600, mtime=T1),
        Entry("data/char", "char", mode=0o666, device=(1, 3), mtime=T1),
        Entry("data/block", "block", mode=0o660, device=(7, 200), gid=6, mtime=T1),
        Entry("data/fifo", "fifo", mode=0o620, mtime=T1),
        Entry("data/link", "symlink", target="file", mtime=T1),
        Entry("data/abs-link", "symlink", target="/etc/passwd", mtime=T1),
        Entry("data/old", "dir", mtime=T1),
        Entry("data/old/x", data=b"x", mtime=T1),
        Entry("data/old/sub", "dir", mtime=T1),
        Entry("data/old/sub/y", data=b"y", mtime=T1),
        Entry("data/gone", data=b"bye", mtime=T1),
        Entry("data/gonedir", "dir", mtime=T1),
        Entry("data/gonedir/z", data=b"z", mtime=T1),
        Entry("data/modedir", "dir", mode=0o700, mtime=T1),
        Entry("data/modedir/keep", data=b"k", mtime=T1),
        Entry("data/typechange", data=b"file first", mtime=T1),
    ])
    second = Layer([
        Entry("data", "dir", mode=0o755, mtime=T2),
        Entry("data/gone", "whiteout"),
        Entry("data/gonedir", "whiteout"),
        Entry("data/old", "dir", mtime=T2),
        Entry("data/old/new", data=b"survives the opaque marker", mtime=T2),
        Entry("data/old", "opaque"),
        Entry("data/modedir", "dir", mode=0o751, uid=1000, mtime=T2),
        Entry("data/hl-cross", "hardlink", target="data/file"),
        Entry("data/new2", data=b"two", mode=0o640, mtime=T2),
        Entry("data/new2-hl", "hardlink", target="data/new2"),
        Entry("data/typechange", "dir", mode=0o705, mtime=T2),
        Entry("data/typechange/child", data=b"c", mtime=T2),
        Entry("data/link", "symlink", target="new2", mtime=T2),
    ])
    third = Layer([
        Entry("data", "dir", mode=0o755, mtime=T3),
        Entry("data/gone", data=b"back again", mtime=T3),
        Entry("data/suid", data=b"s2", mode=0o6755, mtime=T3),
    ])
    return [base, second, third]


@pytest.fixture(scope="module")
def oracle_image(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("oracle")
    layout = tmp / "layout"
    build_layout(layout, layers(), tag="oracle")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:oracle", str(tmp / "bundle")],
                   check=True, capture_output=True)
    ref = f"{registry.host}/demo/oracle:1"
    push_layout(layout, ref, tag="oracle")
    try:
        yield ref, tmp / "bundle" / "rootfs"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# overlayfs cannot hardlink across layers: a hardlink to a file of a lower layer is a copy
# in the upper layer (Docker's overlay2 does the same). Only these link groups differ.
CROSS_LAYER_LINKS = {"data/file", "data/hl-same", "data/hl-cross"}


PER_CONTAINER = ("etc/hostname", "etc/hosts", "etc/resolv.conf")


def test_muelle_rootfs_equals_umoci_unpack(engine: Engine, oracle_image: tuple[str, Path],
                                           tmp_path: Path) -> None:
    ref, umoci_rootfs = oracle_image
    engine.cli("pull", ref)
    engine.cli("create", "--name", "oracle", ref, "true")
    try:
        bundle = json.loads(engine.cli("inspect", "oracle").stdout)[0]["Bundle"]
        rootfs = Path(bundle) / "rootfs"
        diffs = compare_trees(rootfs, umoci_rootfs, names=("muelle", "umoci"))
        # The root's mtime is the container's upper dir's (umoci's comes from no entry).
        # /etc/hostname, hosts and resolv.conf are the container's own: their mount targets
        # are made in its writable layer (Docker keeps them in its "init" layer), which also
        # touches /etc's mtime. Everything else must be the image, exactly.
        unexpected = [d for d in diffs if not d.startswith((".: mtime:", "etc: mtime:"))
                      and d.split(":")[0] not in PER_CONTAINER and not
                      (d.split(":")[0] in CROSS_LAYER_LINKS and ": links:" in d)]
        assert not unexpected, "\n".join(unexpected)
        # the known difference is really there, and only as a link group
        assert any(d.startswith("data/hl-cross: links:") for d in diffs)

        # `export` (merged without a mount) extracts to the same tree as the mount shows.
        archive, out = tmp_path / "rootfs.tar", tmp_path / "exported"
        engine.cli("export", "-o", str(archive), "oracle")
        out.mkdir()
        subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf",
                        str(archive), "-C", str(out)], check=True)
        diffs = compare_trees(rootfs, out, names=("mount", "export"))
        assert [d for d in diffs if not d.startswith(".:")] == []
    finally:
        engine.cli("rm", "-f", "oracle", check=False)
        engine.cli("rmi", ref, check=False)
