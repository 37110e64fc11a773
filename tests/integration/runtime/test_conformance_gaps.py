"""What OCI runtime-tools found missing (issue 20 item 10), checked against runc too.

No mount namespace, an unbindable rootfs, poststart/poststop hooks after a failing one,
settings the host cannot honour, and `runc spec`'s own config. (poststart after the exec:
tests/unit/runtime/test_start_after_exec.py, which can hold the init before its execve.)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.runtime.bundle import edit
from tests.integration.runtime.conftest import CGROUP, Runtime
from tests.support import required


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(path) in line.split()[4]]


def _drop_mount_ns(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                  if ns["type"] != "mount"]


def test_runs_without_a_mount_namespace(muelle: Runtime, rootfs: Path) -> None:
    """runtime-tools linux_ns_itype: a config without "mount" shares the host's mount
    namespace (runc runs it too, but leaves its mounts on the host: we undo ours)."""
    bundle = muelle.bundle("no-mnt", ["sh", "-c", "readlink /proc/self/ns/mnt; ls /"], rootfs)
    edit(bundle, _drop_mount_ns)
    proc = muelle.run("no-mnt", bundle)
    assert proc.returncode == 0, proc.stderr
    ns, *listing = proc.stdout.split()
    assert ns == os.readlink("/proc/self/ns/mnt")
    assert "bin" in listing and "work" not in listing  # chroot()ed into the rootfs
    assert _mounts_under(rootfs) == []


def test_exec_without_a_mount_namespace_sees_the_rootfs(muelle: Runtime,
                                                        rootfs: Path) -> None:
    bundle = muelle.bundle("no-mnt-exec", ["sleep", "60"], rootfs)
    edit(bundle, _drop_mount_ns)
    code, err, _ = muelle.create("no-mnt-exec", bundle)
    assert code == 0, err
    assert _mounts_under(rootfs)  # the container's, under the rootfs bind
    assert muelle.cmd("start", "no-mnt-exec").returncode == 0
    process = muelle.work / "process.json"
    process.write_text(json.dumps({"args": ["ls", "/"], "cwd": "/", "env": [
        "PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0}}))
    proc = muelle.cmd("exec", "--process", str(process), "no-mnt-exec")
    assert proc.returncode == 0, proc.stderr
    assert "bin" in proc.stdout.split() and "work" not in proc.stdout.split()
    assert muelle.cmd("delete", "--force", "no-mnt-exec").returncode == 0
    assert _mounts_under(rootfs) == []


def test_failed_create_without_a_mount_namespace_leaves_no_mount(muelle: Runtime,
                                                                 rootfs: Path) -> None:
    bundle = muelle.bundle("no-mnt-fail", ["true"], rootfs)

    def change(cfg: dict[str, Any]) -> None:
        _drop_mount_ns(cfg)
        cfg["mounts"].append({"destination": "/nope", "type": "bind",
                              "source": "/does/not/exist", "options": ["bind"]})
    edit(bundle, change)
    code, err, _ = muelle.create("no-mnt-fail", bundle)
    assert code != 0 and "/does/not/exist" in err
    assert _mounts_under(rootfs) == []


@pytest.mark.parametrize("propagation", ["unbindable", "runbindable"])
def test_unbindable_rootfs_propagation(muelle: Runtime, rootfs: Path,
                                       propagation: str) -> None:
    """runtime-tools linux_rootfs_propagation: an unbindable "/" must not refuse the bind of
    the rootfs onto itself (EINVAL before), nor the read-only paths' binds; the container's
    root ends up unbindable. (runc 1.1.5 fails both with EINVAL; crun runs them.)"""
    runtime = muelle
    cid = f"prop-{propagation}"
    bundle = runtime.bundle(cid, ["cat", "/proc/self/mountinfo"], rootfs)
    edit(bundle, lambda cfg: cfg["linux"].update(rootfsPropagation=propagation))
    proc = runtime.run(cid, bundle)
    assert proc.returncode == 0, proc.stderr
    root = next(line for line in proc.stdout.splitlines() if line.split()[4] == "/")
    assert "unbindable" in root


def _marker_hook(path: Path, fail: bool = False) -> dict[str, Any]:
    script = f"echo ran >> {path}" + ("; exit 7" if fail else "")
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def test_poststart_and_poststop_hooks_after_a_failing_one_still_run(
        muelle: Runtime, rootfs: Path, tmp_path: Path) -> None:
    """runtime-spec: a failing poststart or poststop hook is a warning, the rest run.
    (runc 1.1 kills the container when a poststart hook fails.)"""
    out = [tmp_path / f"{kind}.{i}" for kind in ("poststart", "poststop") for i in (1, 2)]
    bundle = muelle.bundle("hooks-go-on", ["true"], rootfs)
    edit(bundle, lambda cfg: cfg.update(hooks={
        kind: [_marker_hook(tmp_path / f"{kind}.1", fail=True),
               _marker_hook(tmp_path / f"{kind}.2")] for kind in ("poststart", "poststop")}))
    proc = muelle.run("hooks-go-on", bundle)
    assert proc.returncode == 0, proc.stderr
    assert [path.read_text() for path in out] == ["ran\n"] * 4
    assert "poststart hook failed" in proc.stderr and "poststop hook failed" in proc.stderr


def test_apparmor_profile_without_apparmor_is_refused(runtime: Runtime,
                                                      rootfs: Path) -> None:
    from services.runtime import apparmor

    if apparmor.enabled():
        pytest.skip("this host has AppArmor: the profile would be applied")
    bundle = runtime.bundle("aa", ["true"], rootfs, apparmorProfile="muelle-test-profile")
    code, err, _ = runtime.create("aa", bundle)
    assert code != 0
    if runtime.name == "muelle-runtime":
        assert "AppArmor is not enabled" in err and "Traceback" not in err
    assert runtime.status("aa") == "absent"


def _controller(name: str) -> bool:
    if (CGROUP / "cgroup.controllers").exists():
        return name in (CGROUP / "cgroup.controllers").read_text().split()
    return (CGROUP / name).is_dir()


@pytest.mark.parametrize(("controller", "resources"), [
    ("hugetlb", {"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
    ("net_cls", {"network": {"classID": 1048577}}),
])
def test_limit_of_a_missing_controller_fails_create(runtime: Runtime, rootfs: Path,
                                                    controller: str,
                                                    resources: dict[str, Any]) -> None:
    if _controller(controller):
        pytest.skip(f"this host has the {controller} controller")
    cid = f"no-{controller.replace('_', '-')}"
    bundle = runtime.bundle(cid, ["true"], rootfs)
    edit(bundle, lambda cfg: cfg["linux"]["resources"].update(resources))
    code, err, _ = runtime.create(cid, bundle)
    assert code != 0, "a limit the host cannot apply was dropped"
    if runtime.name == "muelle-runtime":
        assert controller in err and "Traceback" not in err
    assert runtime.status(cid) == "absent"


def test_runc_spec_config_runs(runtime: Runtime, rootfs: Path, tmp_path: Path) -> None:
    """`runc spec`'s config.json lists ambient capabilities it leaves out of the inheritable
    set; runc and crun skip those (prctl(PR_CAP_AMBIENT_RAISE) would fail with EPERM).
    Changed only where a test must: the rootfs, no terminal, and args."""
    runc = required.tool("runc")  # make setup installs it: missing is a failure, not a skip
    bundle = tmp_path / "runc-spec"
    bundle.mkdir()
    subprocess.run([runc, "spec", "--bundle", str(bundle)], check=True)
    runtime.ids.append("runc-spec")

    def change(cfg: dict[str, Any]) -> None:
        assert set(cfg["process"]["capabilities"]["ambient"]) - set(
            cfg["process"]["capabilities"].get("inheritable") or [])
        cfg["root"]["path"] = str(rootfs)
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["sh", "-c", "grep CapAmb /proc/self/status"]
    edit(bundle, change)
    proc = runtime.run("runc-spec", bundle)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["CapAmb:", "0000000000000000"]
