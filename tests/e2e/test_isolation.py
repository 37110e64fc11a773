"""The isolation probe, the same under every runtime: Docker's default capabilities and
seccomp profile, no_new_privs, masked and read-only paths, /dev, limits seen from inside.

The seccomp rules themselves are observed with sysprobe (tests/support/sysprobe), a static C
program built on this machine that makes the raw system calls busybox cannot."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from services.shim.host_devices import host_devices
from tests.support import sysprobe
from tests.support.engine import Engine
from tests.support.images import Entry, build_layout, busybox_layer, push_layout
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.root

RUNTIMES = ["muelle", "runc", "crun"]
DOCKER_CAPS = "00000000a80425fb"  # the 14 default capabilities

PROBE = r"""
grep -E '^(CapEff|CapBnd|CapPrm|Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t '
unshare -m true 2>/dev/null && echo unshare-m=allowed || echo unshare-m=denied
unshare -U true 2>/dev/null && echo unshare-U=allowed || echo unshare-U=denied
mount -t tmpfs none /tmp 2>/dev/null && echo mount=allowed || echo mount=denied
chroot / true && echo chroot=allowed || echo chroot=denied
echo "timer_list=$(wc -c < /proc/timer_list)"
echo "keys=$(wc -c < /proc/keys)"
echo "sched_debug=$(cat /proc/sched_debug 2>/dev/null | wc -c)"
echo "kcore=$(cat /proc/kcore 2>/dev/null | wc -c)"
echo "firmware=$(ls /sys/firmware | wc -l)"
(echo x > /proc/sys/kernel/hostname) 2>/dev/null && echo procsys=writable || echo procsys=ro
(echo h > /proc/sysrq-trigger) 2>/dev/null && echo sysrq=writable || echo sysrq=ro
(echo 1 > /sys/kernel/profiling) 2>/dev/null && echo sys=writable || echo sys=ro
echo "dev=$(ls /dev | sort | tr '\n' ,)"
cg=/sys/fs/cgroup
echo "mem=$(cat $cg/memory/memory.limit_in_bytes 2>/dev/null || cat $cg/memory.max)"
echo "pids=$(cat $cg/pids/pids.max 2>/dev/null || cat $cg/pids.max)"
echo "cpu=$(cat $cg/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 $cg/cpu.max)"
echo "hostname=$(hostname)"
echo "self=$$"
echo "procs=$(ls /proc | grep -c '^[0-9]')"
"""


def probe(engine: Engine, image: str, *flags: str) -> dict[str, str]:
    out = engine.cli("run", "--rm", *flags, image, "sh", "-c", PROBE).stdout
    result = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=") if "=" in line else line.partition(":")
        if sep:
            result[key.strip()] = value.strip()
    return result


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_default_isolation(engine: Engine, image: str, runtime: str) -> None:
    got = probe(engine, image, "--runtime", runtime, "-m", "64m", "--pids-limit", "50",
                "--cpus", "0.5", "--hostname", "probe-host")
    assert got["CapEff"] == got["CapPrm"] == got["CapBnd"] == DOCKER_CAPS, got
    assert got["Seccomp"] == "2" and got["NoNewPrivs"] == "0", got
    assert got["unshare-m"] == got["unshare-U"] == got["mount"] == "denied", got
    assert got["chroot"] == "allowed", got  # CAP_SYS_CHROOT is a default capability
    assert got["timer_list"] == got["keys"] == got["sched_debug"] == got["kcore"] == "0", got
    assert got["firmware"] == "0", got
    assert got["procsys"] == got["sysrq"] == got["sys"] == "ro", got
    devices = set(got["dev"].strip(",").split(","))
    assert devices <= {"console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts",
                       "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom",
                       "zero"}, devices
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm"} <= devices
    assert got["mem"] == str(64 * 1024 * 1024) and got["pids"] == "50", got
    assert got["cpu"] == "50000", got  # --cpus 0.5 over the default 100 ms period
    assert got["hostname"] == "probe-host", got
    # A pid namespace of its own: sh is pid 1 and sees only itself and its pipeline, never
    # the host's processes.
    assert got["self"] == "1" and int(got["procs"]) < 10, got


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_new_privileges_and_unconfined(engine: Engine, image: str, runtime: str) -> None:
    got = probe(engine, image, "--runtime", runtime, "--security-opt", "no-new-privileges")
    assert got["NoNewPrivs"] == "1" and got["Seccomp"] == "2", got
    got = probe(engine, image, "--runtime", runtime, "--security-opt", "seccomp=unconfined")
    assert got["Seccomp"] == "0" and got["NoNewPrivs"] == "0", got
    # Still no CAP_SYS_ADMIN: unshare and mount stay denied by the capability set.
    assert got["mount"] == "denied", got

PRIVILEGED_PROBE = r"""
grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -d '\t ' | tr : =
mount -t tmpfs none /tmp 2>/dev/null && echo mount=allowed || echo mount=denied
echo "masked=$(ls /sys/firmware | wc -l)"
echo "dev=$(find /dev -xdev \( -type c -o -type b \) | sort | tr '\n' ,)"
echo "loop0=$(stat -c %t:%T /dev/loop0 2>/dev/null)"
"""


def _status_field(name: str) -> str:
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith(name + ":"))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_privileged_has_no_filter_and_every_capability(engine: Engine, image: str,
                                                       runtime: str) -> None:
    # Its own short probe: a privileged container could really write to the host's /sys.
    out = engine.cli("run", "--rm", "--runtime", runtime, "--privileged", image, "sh", "-c",
                     PRIVILEGED_PROBE).stdout
    got = dict(line.split("=", 1) for line in out.split())
    bounding = int(_status_field("CapBnd"), 16)  # every capability this host can give
    assert got["Seccomp"] == "0" and int(got["CapEff"], 16) == bounding, (got, bounding)
    assert got["mount"] == "allowed" and got["masked"] != "0", got
    # The host's device nodes, as Docker gives them (not /dev/pts, /dev/console: mounts
    # and the runtime's own; /dev/ptmx is the runtimes' link to pts/ptmx), with the
    # host's numbers.
    host = {d["path"] for d in host_devices()} - {"/dev/ptmx"}
    inside = set(got["dev"].strip(",").split(","))
    assert len(host) > 20 and host <= inside, sorted(host - inside)
    if os.path.exists("/dev/loop0"):
        rdev = os.stat("/dev/loop0").st_rdev
        assert got["loop0"] == f"{os.major(rdev):x}:{os.minor(rdev):x}", got


def test_cap_add_sys_admin_opens_the_gated_calls(engine: Engine, image: str) -> None:
    got = probe(engine, image, "--cap-add", "SYS_ADMIN")
    assert got["Seccomp"] == "2" and got["mount"] == "allowed", got


def test_user_profile_from_a_file(engine: Engine, image: str, tmp_path: Path) -> None:
    # A profile that allows everything but mkdir: the file is read by the CLI.
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    out = engine.cli("run", "--rm", "--security-opt", f"seccomp={path}", image, "sh", "-c",
                     "mkdir /tmp/x 2>&1; echo rc=$?", check=False).stdout
    assert "Operation not permitted" in out and "rc=1" in out
    bad = engine.cli("run", "--rm", "--security-opt", "seccomp=/no/such/file", image, "true",
                     check=False)
    assert bad.returncode != 0 and "seccomp profile" in bad.stderr


@pytest.fixture(scope="module")
def probe_image(engine: Engine, registry: LocalRegistry,
                tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox plus /bin/sysprobe, pulled into the module's engine."""
    tmp = tmp_path_factory.mktemp("sysprobe")
    binary = sysprobe.build(tmp / "sysprobe")
    layer = busybox_layer([Entry("bin/sysprobe", data=binary.read_bytes(), mode=0o755)])
    build_layout(tmp / "layout", [layer], tag="1")
    ref = f"{registry.host}/tests/sysprobe:1"
    push_layout(tmp / "layout", ref, tag="1")
    engine.cli("pull", ref)
    return ref


def syscalls(engine: Engine, image: str, *flags: str) -> dict[str, str]:
    return sysprobe.parse(engine.cli("run", "--rm", *flags, image, "sysprobe").stdout)


# What Docker's default profile answers (SPECS.md §6.2), "ok" = the call went through.
DEFAULT_ANSWERS = {
    "socket_inet": "ok", "socket_unix": "ok",
    "socket_alg": "EPERM", "socket_vsock": "EPERM",  # the two families the rule leaves out
    "personality_query": "ok", "personality_linux32": "ok",
    "personality_norandom": "EPERM",  # not one of the allowed personas
    "clone3": "ENOSYS",  # so that libc falls back to clone
    "fork": "ok",  # clone without namespace flags
    "clone_newns": "EPERM", "unshare_user": "EPERM", "unshare_mnt": "EPERM",
    "mount": "EPERM",
    "chroot": "ok",  # CAP_SYS_CHROOT is a default capability, and opens chroot
    "keyctl": "EPERM", "add_key": "EPERM", "bpf": "EPERM", "userfaultfd": "EPERM",
    "io_uring_setup": "EPERM", "perf_event_open": "EPERM", "kexec_load": "EPERM",
    "pidfd_open": "ok", "membarrier": "ok",
}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_default_seccomp_rules_from_inside(engine: Engine, probe_image: str,
                                           runtime: str) -> None:
    assert syscalls(engine, probe_image, "--runtime", runtime) == DEFAULT_ANSWERS


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_unconfined_and_sys_admin_lift_the_rules(engine: Engine, probe_image: str,
                                                 runtime: str) -> None:
    got = syscalls(engine, probe_image, "--runtime", runtime,
                   "--security-opt", "seccomp=unconfined")
    # The kernel itself now answers clone3(NULL, 0) (EINVAL) and any persona.
    assert got["clone3"] == "EINVAL" and got["personality_norandom"] == "ok", got
    assert got["mount"] == "EPERM", got  # the capability set still says no
    got = syscalls(engine, probe_image, "--runtime", runtime, "--cap-add", "SYS_ADMIN")
    # CAP_SYS_ADMIN opens its group: clone3 and clone with namespace flags, unshare, mount.
    assert got["clone3"] == "EINVAL" and got["clone_newns"] == "ok", got
    assert got["unshare_mnt"] == got["mount"] == "ok", got
    assert got["socket_vsock"] == got["keyctl"] == "EPERM", got  # not gated by any cap


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_gets_the_same_confinement(engine: Engine, probe_image: str,
                                        runtime: str) -> None:
    # An exec'd process joins the container: same capabilities, filter and no_new_privs.
    name = f"iso-exec-{runtime}-{uuid.uuid4().hex[:6]}"
    engine.cli("run", "-d", "--name", name, "--runtime", runtime,
               "--security-opt", "no-new-privileges", probe_image, "sleep", "60")
    try:
        status = engine.cli("exec", name, "grep", "-E", "^(CapEff|Seccomp|NoNewPrivs):",
                            "/proc/self/status").stdout
        got = dict(line.replace("\t", "").split(":", 1) for line in status.splitlines())
        assert got == {"CapEff": DOCKER_CAPS, "Seccomp": "2", "NoNewPrivs": "1"}, got
        answers = sysprobe.parse(engine.cli("exec", name, "sysprobe").stdout)
        assert answers == DEFAULT_ANSWERS
    finally:
        engine.cli("rm", "-f", name, check=False)
