"""The device list a privileged container gets: a walk of /dev like containerd's."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from services.shim.host_devices import host_devices


@pytest.mark.root
def test_walk_keeps_device_nodes_only(tmp_path: Path) -> None:
    os.mknod(tmp_path / "null2", stat.S_IFCHR, os.makedev(1, 3))
    (tmp_path / "null2").chmod(0o620)  # mknod's mode goes through the umask
    (tmp_path / "net").mkdir()
    os.mknod(tmp_path / "net" / "tun", stat.S_IFCHR, os.makedev(10, 200))
    (tmp_path / "net" / "tun").chmod(0o666)  # mknod's mode goes through the umask
    os.mknod(tmp_path / "loop9", stat.S_IFBLK | 0o600, os.makedev(7, 9))
    for skipped in ("pts", "shm", "mqueue", "fd"):
        (tmp_path / skipped).mkdir()
        os.mknod(tmp_path / skipped / "x", stat.S_IFCHR | 0o600, os.makedev(136, 0))
    os.mknod(tmp_path / "console", stat.S_IFCHR | 0o600, os.makedev(5, 1))
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "stdin").symlink_to("/proc/self/fd/0")
    (tmp_path / "file").write_text("x")
    assert host_devices(str(tmp_path)) == [
        {"path": "/dev/loop9", "type": "b", "major": 7, "minor": 9, "fileMode": 0o600,
         "uid": 0, "gid": 0},
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        {"path": "/dev/null2", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620,
         "uid": 0, "gid": 0},
    ]


def test_this_hosts_dev_has_the_usual_nodes() -> None:
    paths = {d["path"] for d in host_devices()}
    assert {"/dev/null", "/dev/zero", "/dev/tty"} <= paths
    assert "/dev/console" not in paths and not any(p.startswith("/dev/pts/") for p in paths)


@pytest.mark.root
def test_device_mappings_as_dockerd_finds_them(tmp_path: Path) -> None:
    from services.shim.host_devices import mapped_devices
    from vocab.errors import InvalidArgument

    os.mknod(tmp_path / "null2", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (tmp_path / "link").symlink_to(tmp_path / "null2")
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    os.mknod(tmp_path / "dir" / "sub" / "tun", stat.S_IFCHR | 0o600, os.makedev(10, 200))
    (tmp_path / "dir" / "file").write_text("x")
    (tmp_path / "dir" / "sub" / "ln").symlink_to(tmp_path / "null2")  # skipped, as dockerd
    null = {"type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 0, "gid": 0}
    devices, rules = mapped_devices(str(tmp_path / "link"), "/dev/mine", "rw")
    assert devices == [{"path": "/dev/mine", **null}]
    assert rules == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
    devices, rules = mapped_devices(str(tmp_path / "dir"), "/dev/net", "rwm")
    assert [(d["path"], d["major"], d["minor"]) for d in devices] == \
        [("/dev/net/sub/tun", 10, 200)]
    with pytest.raises(InvalidArgument, match='custom device ".*/nope": no such file or '
                                              "directory"):
        mapped_devices(str(tmp_path / "nope"), "/dev/x", "rwm")
    with pytest.raises(InvalidArgument, match="not a device node"):
        mapped_devices(str(tmp_path / "dir" / "file"), "/dev/x", "rwm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match="not a device node"):
        mapped_devices(str(tmp_path / "empty"), "/dev/x", "rwm")
