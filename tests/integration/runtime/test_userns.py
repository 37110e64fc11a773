"""User namespaces (linux.uidMappings/gidMappings), muelle-runtime and runc side by side.

The rootfs is a copy shifted by 100000 (uid u becomes 100000 + u), as Docker's userns-remap
keeps its layers, in a directory the remapped root can walk (pytest's tmp dirs are 0700).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.runtime.bundle import DOCKER_CAPEFF, edit
from tests.integration.runtime.conftest import Runtime

SHIFT = 100000
SIZE = 65536
MAPS = [{"containerID": 0, "hostID": SHIFT, "size": SIZE}]


@pytest.fixture(scope="module")
def shifted_rootfs(rootfs: Path) -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="muelle-userns-"))
    try:
        top.chmod(0o755)
        dest = top / "rootfs"
        shutil.copytree(rootfs, dest, symlinks=True)
        for path in [dest, *dest.rglob("*")]:
            st = path.lstat()
            os.lchown(path, SHIFT + st.st_uid, SHIFT + st.st_gid)
        yield dest
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _userns(cfg: dict[str, Any], network: bool = True) -> None:
    linux = cfg["linux"]
    linux["namespaces"] = [{"type": t} for t in
                           ("pid", "ipc", "uts", "mount", "cgroup", "user")
                           + (("network",) if network else ())]
    linux["uidMappings"] = MAPS
    linux["gidMappings"] = MAPS


def _field(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in {text!r}")


SCRIPT = ("cat /proc/self/uid_map /proc/self/gid_map; echo id=$(id -u):$(id -g); "
          "cat /proc/self/status; touch /tmp/made-inside; "
          "mknod /tmp/null c 1 3 2>/dev/null && echo mknod=yes || echo mknod=no; "
          "hostname; echo pid=$$; ls /sys/class/net | tr '\\n' ' '; echo; "
          "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys=rw || echo sys=ro; "
          "cat /proc/kcore | wc -c")


def test_run_in_user_namespace(runtime: Runtime, shifted_rootfs: Path) -> None:
    bundle = runtime.bundle("userns", ["sh", "-c", SCRIPT], shifted_rootfs)
    edit(bundle, _userns)
    proc = runtime.run("userns", bundle)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr + out
    maps = [line.split() for line in out.splitlines()[:2]]
    assert maps == [["0", str(SHIFT), str(SIZE)]] * 2
    assert "id=0:0" in out
    # Root of its namespace with Docker's capabilities there, yet no device nodes.
    assert int(_field(out, "CapEff"), 16) == DOCKER_CAPEFF
    assert "mknod=no" in out
    assert "\nmuelle-test\n" in out and "pid=1\n" in out
    assert "sys=ro" in out
    assert out.rstrip().endswith("\n0")  # /proc/kcore still masked
    made = shifted_rootfs / "tmp" / "made-inside"
    try:
        st = made.stat()
        assert (st.st_uid, st.st_gid) == (SHIFT, SHIFT)
    finally:
        made.unlink(missing_ok=True)


def test_user_namespace_sharing_the_host_network(muelle: Runtime,
                                                 shifted_rootfs: Path) -> None:
    """No network namespace of its own: the kernel refuses a new sysfs, so the host's /sys
    is bound read-only, as Podman does (runc 1.1.5 fails this create with EPERM)."""
    runtime = muelle
    bundle = runtime.bundle("userns-hostnet", ["sh", "-c", "ls /sys/class/net; "
                                               "touch /sys/x 2>/dev/null || echo sys-ro"],
                            shifted_rootfs)
    edit(bundle, lambda cfg: _userns(cfg, network=False))
    proc = runtime.run("userns-hostnet", bundle)
    assert proc.returncode == 0, proc.stderr
    assert "lo" in proc.stdout.split() and "sys-ro" in proc.stdout


def test_non_root_user_in_user_namespace(runtime: Runtime, shifted_rootfs: Path) -> None:
    bundle = runtime.bundle("userns-user", ["sh", "-c", "id -u; id -g; id -G"], shifted_rootfs,
                            user={"uid": 1000, "gid": 1000, "additionalGids": [10]})
    edit(bundle, _userns)
    proc = runtime.run("userns-user", bundle)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:2] == ["1000", "1000"]
    assert "10" in proc.stdout.split()[2:]


def test_exec_joins_the_user_namespace(runtime: Runtime, shifted_rootfs: Path,
                                       tmp_path: Path) -> None:
    bundle = runtime.bundle("userns-exec", ["sleep", "60"], shifted_rootfs)
    edit(bundle, _userns)
    code, err, _ = runtime.create("userns-exec", bundle)
    assert code == 0, err
    try:
        assert runtime.cmd("start", "userns-exec").returncode == 0
        process = tmp_path / "process.json"
        process.write_text(json.dumps({
            "args": ["sh", "-c", "cat /proc/self/uid_map; id -u"], "cwd": "/",
            "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
        out = runtime.cmd("exec", "--process", str(process), "userns-exec")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["0", str(SHIFT), str(SIZE), "0"]
    finally:
        runtime.cmd("delete", "--force", "userns-exec")


def _userns_with(**linux: Any) -> Callable[[dict[str, Any]], None]:
    """_userns, then these linux keys set (None: removed)."""
    def change(cfg: dict[str, Any]) -> None:
        _userns(cfg)
        for key, value in linux.items():
            if value is None:
                cfg["linux"].pop(key)
            else:
                cfg["linux"][key] = value
    return change


@pytest.mark.parametrize("change, message", [
    (lambda cfg: cfg["linux"].update(uidMappings=MAPS, gidMappings=MAPS),
     "need a user namespace"),
    (_userns_with(gidMappings=None), "needs linux.uidMappings and linux.gidMappings"),
    (_userns_with(uidMappings=[{"containerID": 0, "hostID": SHIFT, "size": 10},
                               {"containerID": 5, "hostID": 200000, "size": 10}]), "overlap"),
    (_userns_with(uidMappings=[{"containerID": 0, "hostID": SHIFT, "size": 0}]),
     "out of range"),
    (_userns_with(gidMappings=[{"containerID": 0}]), "needs containerID, hostID and size"),
    (lambda cfg: cfg["linux"].update(rootfsPropagation="sideways"),
     "unknown linux.rootfsPropagation"),  # checked with the rest of linux.*
])
def test_bad_mappings_are_refused(muelle: Runtime, rootfs: Path, change: Any,
                                  message: str) -> None:
    bundle = muelle.bundle("userns-bad", ["true"], rootfs)
    edit(bundle, change)
    proc = muelle.run("userns-bad", bundle)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_unmapped_host_ids_are_refused_by_the_kernel(muelle: Runtime, rootfs: Path) -> None:
    """A mapping the kernel rejects fails create cleanly (no container, no cgroup left)."""
    bundle = muelle.bundle("userns-kernel", ["true"], rootfs)
    edit(bundle, _userns_with(uidMappings=[{"containerID": (1 << 32) - 1, "hostID": SHIFT,
                                            "size": 1}]))
    code, err, _ = muelle.create("userns-kernel", bundle)
    assert code != 0
    assert "id maps" in err and "Traceback" not in err
    assert muelle.status("userns-kernel") == "absent"


