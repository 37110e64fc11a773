"""The isolation probe, the same under every runtime: Docker's default capabilities and
seccomp profile, no_new_privs, masked and read-only paths, /dev, limits seen from inside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.engine import Engine

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
echo "firmware=$(ls /sys/firmware | wc -l)"
(echo x > /proc/sys/kernel/hostname) 2>/dev/null && echo procsys=writable || echo procsys=ro
(echo h > /proc/sysrq-trigger) 2>/dev/null && echo sysrq=writable || echo sysrq=ro
(echo 1 > /sys/kernel/profiling) 2>/dev/null && echo sys=writable || echo sys=ro
echo "dev=$(ls /dev | sort | tr '\n' ,)"
cg=/sys/fs/cgroup
echo "mem=$(cat $cg/memory/memory.limit_in_bytes 2>/dev/null || cat $cg/memory.max)"
echo "pids=$(cat $cg/pids/pids.max 2>/dev/null || cat $cg/pids.max)"
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
    got = probe(engine, image, "--runtime", runtime, "-m", "64m", "--pids-limit", "50")
    assert got["CapEff"] == got["CapPrm"] == got["CapBnd"] == DOCKER_CAPS, got
    assert got["Seccomp"] == "2" and got["NoNewPrivs"] == "0", got
    assert got["unshare-m"] == got["unshare-U"] == got["mount"] == "denied", got
    assert got["chroot"] == "allowed", got  # CAP_SYS_CHROOT is a default capability
    assert got["timer_list"] == got["keys"] == "0" and got["firmware"] == "0", got
    assert got["procsys"] == got["sysrq"] == got["sys"] == "ro", got
    devices = set(got["dev"].strip(",").split(","))
    assert devices <= {"console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts",
                       "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom",
                       "zero"}, devices
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm"} <= devices
    assert got["mem"] == str(64 * 1024 * 1024) and got["pids"] == "50", got


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_new_privileges_and_unconfined(engine: Engine, image: str, runtime: str) -> None:
    got = probe(engine, image, "--runtime", runtime, "--security-opt", "no-new-privileges")
    assert got["NoNewPrivs"] == "1" and got["Seccomp"] == "2", got
    got = probe(engine, image, "--runtime", runtime, "--security-opt", "seccomp=unconfined")
    assert got["Seccomp"] == "0", got
    # Still no CAP_SYS_ADMIN: unshare and mount stay denied by the capability set.
    assert got["mount"] == "denied", got


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
