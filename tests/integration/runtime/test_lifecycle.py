"""create/start/state/kill/delete and run, black box, against muelle-runtime and runc."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.integration.runtime.bundle import DOCKER_CAPEFF, MEMORY_LIMIT, PIDS_LIMIT, edit
from tests.integration.runtime.conftest import CGROUP, PARENT, Runtime


def _field(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in {text!r}")


def test_run_isolation(runtime: Runtime, rootfs: Path) -> None:
    script = ("echo pid=$$; hostname; cat /proc/net/dev; cat /proc/self/status; "
              "echo masked=$(cat /proc/timer_list | wc -c); "
              "echo 1 > /proc/sys/kernel/domainname && echo sys=rw || echo sys=ro; "
              "echo nofile=$(ulimit -n)")
    bundle = runtime.bundle("iso", ["sh", "-c", script], rootfs)
    proc = runtime.run("iso", bundle)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "pid=1\n" in out
    assert "\nmuelle-test\n" in out
    interfaces = [line.split(":")[0].strip() for line in out.splitlines() if ":" in line
                  and line.split(":")[0].strip().isidentifier() and "|" not in line
                  and line.startswith(" ")]
    assert interfaces == ["lo"]
    assert int(_field(out, "CapEff"), 16) == DOCKER_CAPEFF
    assert int(_field(out, "CapBnd"), 16) == DOCKER_CAPEFF
    assert _field(out, "NoNewPrivs") == "1"
    assert "masked=0" in out
    assert "sys=ro" in out
    assert "nofile=1024" in out


def test_exit_code_propagates(runtime: Runtime, rootfs: Path) -> None:
    bundle = runtime.bundle("code", ["sh", "-c", "exit 7"], rootfs)
    assert runtime.run("code", bundle).returncode == 7


def test_lifecycle(runtime: Runtime, rootfs: Path) -> None:
    cid = "life"
    bundle = runtime.bundle(cid, ["sh", "-c", "echo started; exec sleep 60"], rootfs)
    code, err, pid_file = runtime.create(cid, bundle)
    assert code == 0, err
    state = json.loads(runtime.cmd("state", cid).stdout)
    assert state["status"] == "created"
    assert state["id"] == cid and state["bundle"] == str(bundle)
    assert state["pid"] == int(pid_file.read_text())
    assert os.path.exists(f"/proc/{state['pid']}")
    if not (CGROUP / "cgroup.controllers").exists():
        memory = CGROUP / "memory" / PARENT / cid
        assert int((memory / "memory.limit_in_bytes").read_text()) == MEMORY_LIMIT
        assert int((CGROUP / "pids" / PARENT / cid / "pids.max").read_text()) == PIDS_LIMIT
        assert str(state["pid"]) in (memory / "cgroup.procs").read_text().split()
    assert (runtime.work / f"{cid}.out").read_text() == ""  # not exec'd before start

    assert runtime.cmd("start", cid).returncode == 0
    assert runtime.wait_status(cid, "running") == "running"
    assert runtime.cmd("start", cid).returncode != 0  # only from created
    assert runtime.cmd("delete", cid).returncode != 0  # only when stopped
    assert runtime.status(cid) == "running"

    assert runtime.cmd("kill", cid, "KILL").returncode == 0
    assert runtime.wait_status(cid, "stopped") == "stopped"
    assert runtime.cmd("start", cid).returncode != 0
    proc = runtime.cmd("delete", cid)
    assert proc.returncode == 0, proc.stderr
    assert runtime.status(cid) == "absent"
    assert "started" in (runtime.work / f"{cid}.out").read_text()


def test_delete_force_kills(runtime: Runtime, rootfs: Path) -> None:
    bundle = runtime.bundle("force", ["sleep", "60"], rootfs)
    code, err, pid_file = runtime.create("force", bundle)
    assert code == 0, err
    pid = int(pid_file.read_text())
    assert runtime.cmd("start", "force").returncode == 0
    proc = runtime.cmd("delete", "--force", "force")
    assert proc.returncode == 0, proc.stderr
    assert runtime.status("force") == "absent"
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1].startswith(("Z", "X"))


def test_delete_force_created(runtime: Runtime, rootfs: Path) -> None:
    bundle = runtime.bundle("fcreated", ["sleep", "60"], rootfs)
    assert runtime.create("fcreated", bundle)[0] == 0
    assert runtime.cmd("delete", "--force", "fcreated").returncode == 0
    assert runtime.status("fcreated") == "absent"


def test_missing_executable(runtime: Runtime, rootfs: Path) -> None:
    bundle = runtime.bundle("noexec", ["no-such-command", "x"], rootfs)
    code, err, _ = runtime.create("noexec", bundle)
    assert code != 0
    assert 'exec: "no-such-command": executable file not found in $PATH' in err.replace('\\"', '"')
    assert runtime.status("noexec") == "absent"


def test_unknown_capability_rejected(muelle: Runtime, rootfs: Path) -> None:
    # runc 1.1 only warns about unknown capabilities; muelle refuses the spec (DESIGN.md).
    runtime = muelle
    bundle = runtime.bundle("badcap", ["true"], rootfs)
    edit(bundle, lambda c: c["process"]["capabilities"]["bounding"].append("CAP_NOPE"))
    code, err, _ = runtime.create("badcap", bundle)
    assert code != 0
    assert "CAP_NOPE" in err
    assert runtime.status("badcap") == "absent"


def test_a_cgroup_limit_the_kernel_refuses_fails_the_create(muelle: Runtime,
                                                            rootfs: Path) -> None:
    """muelle makes the cgroup while the init sets up: a refused limit ends both, and the
    fixture checks that no process, cgroup or state is left."""
    runtime = muelle
    bundle = runtime.bundle("badcpus", ["true"], rootfs)
    edit(bundle, lambda c: c["linux"]["resources"].update(cpu={"cpus": "4096"}))
    code, err, _ = runtime.create("badcpus", bundle)
    assert code != 0
    assert err.strip() and "Traceback" not in err  # the kernel's word: ERANGE here
    assert runtime.status("badcpus") == "absent"


def test_unknown_container(runtime: Runtime) -> None:
    for verb in (["state"], ["start"], ["kill"], ["delete"]):
        proc = runtime.cmd(*verb, "ghost")
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr


def test_user_switch(runtime: Runtime, rootfs: Path) -> None:
    bundle = runtime.bundle("user", ["sh", "-c", "id; grep CapEff /proc/self/status; pwd"],
                            rootfs, user={"uid": 1000, "gid": 1000, "additionalGids": [10]},
                            cwd="/home/app/work")
    proc = runtime.run("user", bundle)
    assert proc.returncode == 0, proc.stderr
    assert "uid=1000" in proc.stdout and "gid=1000" in proc.stdout and "10(wheel)" in proc.stdout
    assert int(_field(proc.stdout, "CapEff"), 16) == 0
    assert "/home/app/work" in proc.stdout


def test_readonly_root_and_bind(runtime: Runtime, rootfs: Path, tmp_path: Path) -> None:
    host = tmp_path / "host-data"
    host.mkdir()
    (host / "file").write_text("from-host")
    bundle = runtime.bundle("ro", ["sh", "-c", "cat /data/file; touch /x || echo root=ro; "
                                   "touch /data/y || echo data=ro; touch /tmp/ok && echo tmp=rw"],
                            rootfs)

    def change(c: dict) -> None:
        c["root"]["readonly"] = True
        c["mounts"] += [
            {"destination": "/data", "type": "bind", "source": str(host),
             "options": ["rbind", "ro", "nosuid", "nodev"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        ]

    edit(bundle, change)
    proc = runtime.run("ro", bundle)
    assert proc.returncode == 0, proc.stderr
    assert "from-host" in proc.stdout
    assert "root=ro" in proc.stdout and "data=ro" in proc.stdout and "tmp=rw" in proc.stdout
    assert not (host / "y").exists()


def test_seccomp_profile(runtime: Runtime, rootfs: Path) -> None:
    bundle = runtime.bundle("seccomp", ["sh", "-c", "mkdir /tmp/x && echo made || echo denied"],
                            rootfs)
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    edit(bundle, lambda c: c["linux"].__setitem__("seccomp", profile))
    proc = runtime.run("seccomp", bundle)
    assert proc.returncode == 0, proc.stderr
    assert "denied" in proc.stdout


def test_symlink_cannot_escape_rootfs(runtime: Runtime, tmp_path: Path) -> None:
    from tests.integration.runtime.bundle import make_rootfs

    private = tmp_path / "evil-rootfs"
    make_rootfs(private)
    outside = tmp_path / "outside"
    (private / "escape").symlink_to(str(outside))  # absolute: must mean <rootfs>/<outside>
    (private / "up").symlink_to("../../../../../../../..")
    bundle = runtime.bundle("escape", ["true"], private)
    edit(bundle, lambda c: c["mounts"].extend([
        {"destination": "/escape/mnt", "type": "tmpfs", "source": "tmpfs", "options": []},
        {"destination": f"/up{tmp_path}/outside2", "type": "tmpfs", "source": "tmpfs",
         "options": []}]))
    proc = runtime.run("escape", bundle)
    assert proc.returncode == 0, proc.stderr
    assert not outside.exists()
    assert not (tmp_path / "outside2").exists()
