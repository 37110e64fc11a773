"""Docker's default seccomp policy as written into config.json, and users' profiles."""

from __future__ import annotations

import json

import pytest
from muelle.shim.v1 import shim_pb2

from services.shim import seccomp_profile as sp
from services.shim.spec import DEFAULT_CAPS, seccomp_filter
from vocab.errors import InvalidArgument

DENIED = ("mount", "umount2", "unshare", "setns", "pivot_root", "chroot", "keyctl", "add_key",
          "request_key", "kexec_load", "open_by_handle_at", "bpf", "perf_event_open",
          "userfaultfd", "reboot", "init_module", "finit_module", "delete_module", "swapon",
          "acct", "syslog", "settimeofday", "clock_settime", "quotactl", "move_pages", "mbind",
          "set_mempolicy", "io_uring_setup", "fsopen", "fsmount", "open_tree", "move_mount",
          "mount_setattr", "clone", "clone3", "personality", "socket")


def _unconditional(profile: dict) -> set[str]:
    return {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW"
            and not r.get("args") for n in r["names"]}


def test_default_is_an_allow_list_without_the_dangerous_calls() -> None:
    profile = sp.default_profile(list(DEFAULT_CAPS), machine="x86_64")
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _unconditional(profile)
    assert not allowed & (set(DENIED) - {"chroot"}), allowed & set(DENIED)
    assert "chroot" in allowed  # CAP_SYS_CHROOT is a default capability
    for name in ("read", "execve", "close_range", "membarrier",
                 "pidfd_open", "faccessat2", "arch_prctl", "ptrace", "name_to_handle_at"):
        assert name in allowed, name


def test_conditional_rules() -> None:
    rules = sp.default_profile(list(DEFAULT_CAPS), machine="x86_64")["syscalls"]
    socket = [r["args"][0] for r in rules if r["names"] == ["socket"]]
    assert {(a["op"], a["value"]) for a in socket} == {
        ("SCMP_CMP_LT", 38), ("SCMP_CMP_EQ", 39), ("SCMP_CMP_GT", 40)}  # not ALG, not VSOCK
    personas = {r["args"][0]["value"] for r in rules if r["names"] == ["personality"]}
    assert personas == {0, 8, 0x20000, 0x20008, 0xFFFFFFFF}
    clone = next(r for r in rules if r["names"] == ["clone"])
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0,
                              "op": "SCMP_CMP_MASKED_EQ"}]
    clone3 = next(r for r in rules if r["names"] == ["clone3"])
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    s390 = sp.default_profile(list(DEFAULT_CAPS), machine="s390x")["syscalls"]
    assert next(r for r in s390 if r["names"] == ["clone"])["args"][0]["index"] == 1


def test_capabilities_open_their_groups() -> None:
    profile = sp.default_profile([*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_SYS_TIME"], "x86_64")
    allowed = _unconditional(profile)
    assert {"mount", "unshare", "setns", "clone", "clone3", "settimeofday",
            "lsm_list_modules"} <= allowed
    assert not any(r["names"] == ["clone3"] and r["action"] != "SCMP_ACT_ALLOW"
                   for r in profile["syscalls"])
    assert "reboot" not in allowed


def test_docker_format_profiles() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"name": "write", "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
             "includes": {"arches": ["amd64"]}},
            {"names": ["s390_runtime_instr"], "action": "SCMP_ACT_ALLOW",
             "includes": {"arches": ["s390x"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }
    oci = sp.from_docker(profile, list(DEFAULT_CAPS), machine="x86_64")
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    names = [r["names"] for r in oci["syscalls"]]
    assert names == [["read"], ["write"], ["arch_prctl"], ["clone3"]]
    assert oci["syscalls"][-1]["errnoRet"] == 38


def test_docker_min_kernel() -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    new = sp.from_docker(profile, [], machine="x86_64", kernel="6.1.0-18-amd64")
    assert [r["names"] for r in new["syscalls"]] == [["ptrace"], ["read"]]
    old = sp.from_docker(profile, [], machine="x86_64", kernel="4.4.0")
    assert [r["names"] for r in old["syscalls"]] == [["read"]]
    assert sp.from_docker(profile, [], "x86_64", kernel="4.10")["syscalls"][0]["names"] == \
        ["ptrace"]  # 4.10 > 4.8: compared as numbers, not text


def test_spec_choices() -> None:
    assert seccomp_filter("", list(DEFAULT_CAPS))["defaultAction"] == "SCMP_ACT_ERRNO"
    user = json.dumps({"defaultAction": "SCMP_ACT_ALLOW"})
    assert seccomp_filter(user, [])["defaultAction"] == "SCMP_ACT_ALLOW"
    with pytest.raises(InvalidArgument):
        seccomp_filter("{not json", [])
    assert shim_pb2.ContainerSpec(seccomp="unconfined").seccomp == "unconfined"
