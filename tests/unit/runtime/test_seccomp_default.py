"""Docker's default profile (written by the shim) through muelle-runtime's libseccomp path:
every rule compiles without a warning, and the installed filter answers each call as
SPECS.md §6.2 says (arg conditions incl. SCMP_CMP_MASKED_EQ, errnoRet, arch list)."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from typing import Any

import pytest

from services.runtime import seccomp
from services.shim import seccomp_profile
from services.shim.spec import DEFAULT_CAPS
from tests.unit.runtime import filtered_child
from vocab.errors import InvalidArgument

# x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
NR = {"socket": 41, "clone": 56, "chroot": 161, "mount": 165, "personality": 135,
      "keyctl": 250, "unshare": 272, "clone3": 435, "getpid": 39}
AF_INET, AF_ALG, AF_VSOCK, SOCK_STREAM = 2, 38, 40, 1
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000

# (name, call, expected errno or 0): what the default profile answers.
CALLS: list[tuple[str, tuple[Any, ...], int]] = [
    ("socket AF_INET", ("socket", AF_INET, SOCK_STREAM, 0), 0),
    ("socket AF_ALG", ("socket", AF_ALG, 5, 0), errno.EPERM),
    ("socket AF_VSOCK", ("socket", AF_VSOCK, SOCK_STREAM, 0), errno.EPERM),
    ("personality query", ("personality", 0xFFFFFFFF), 0),
    ("personality ADDR_NO_RANDOMIZE", ("personality", 0x0040000), errno.EPERM),
    ("clone3", ("clone3", 0, 0), errno.ENOSYS),
    ("clone CLONE_NEWNS", ("clone", CLONE_NEWNS | 17, 0, 0, 0, 0), errno.EPERM),
    ("keyctl", ("keyctl", 0, -3, 0), errno.EPERM),
    ("mount", ("mount", b"x", b"/tmp", b"tmpfs", 0, 0), errno.EPERM),
    ("chroot", ("chroot", b"/"), 0),
    ("getpid", ("getpid",), 0),
    # Last: once in a new user namespace, the kernel itself refuses the rest (no caps).
    ("unshare CLONE_NEWUSER", ("unshare", CLONE_NEWUSER), errno.EPERM),
]


def default_calls(libc: Any) -> dict[str, int]:
    """Run in the filtered child (filtered_child.answers): each of CALLS."""
    out = {}
    for name, (call, *args), _ in CALLS:
        ctypes.set_errno(0)
        ret = libc.syscall(ctypes.c_long(NR[call]), *(
            ctypes.c_long(a) if isinstance(a, int) else a for a in args))
        if call == "clone" and ret == 0:
            os._exit(0)  # the clone that got through: it must not report too
        if call == "clone" and ret > 0:
            os.waitpid(ret, 0)
        out[name] = 0 if ret >= 0 else ctypes.get_errno()
    return out


def _answers(profile: dict) -> dict[str, int]:
    """Install ``profile`` in a child (own mount namespace, in case a call gets through)
    and make each call there; returns name -> errno (0 = it went through)."""

    return filtered_child.answers(seccomp.compile_bpf(profile, lambda m: None),
                                  f"{__name__}:default_calls", own_mount_ns=True)


needs_x86_64_root = pytest.mark.skipif(
    platform.machine() != "x86_64" or os.geteuid() != 0,
    reason="x86_64 syscall numbers; unshare of the mount namespace needs root")


def test_default_profile_compiles_without_warnings() -> None:
    warnings: list[str] = []
    for caps in (list(DEFAULT_CAPS), [*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]):
        bpf = seccomp.compile_bpf(seccomp_profile.default_profile(caps), warnings.append)
        assert bpf and len(bpf) % 8 == 0
    assert warnings == []


@needs_x86_64_root
def test_default_profile_answers_like_docker() -> None:
    got = _answers(seccomp_profile.default_profile(list(DEFAULT_CAPS), "x86_64"))
    assert got == {name: want for name, _, want in CALLS}


@needs_x86_64_root
def test_sys_admin_opens_clone3_and_namespaces() -> None:
    got = _answers(seccomp_profile.default_profile([*DEFAULT_CAPS, "CAP_SYS_ADMIN"]))
    assert got["clone3"] == errno.EINVAL  # the kernel's own answer to a size-0 clone_args
    assert got["mount"] == 0
    # The filter lets it through; the kernel may still refuse (EINVAL when the test process
    # shares state it cannot unshare), but never with the filter's EPERM.
    assert got["unshare CLONE_NEWUSER"] != errno.EPERM
    assert got["socket AF_VSOCK"] == errno.EPERM


@needs_x86_64_root
def test_rule_errno_defaults_to_eperm_not_default_errno() -> None:
    # runtime-spec: errnoRet of a rule defaults to EPERM; defaultErrnoRet is the default
    # action's alone.
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": errno.EACCES,
               "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_NOPE"],  # unknown: skipped
               "syscalls": [
                   {"names": ["keyctl", "no_such_call"], "action": "SCMP_ACT_ERRNO"},
                   {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95,
                    "args": [{"index": 0, "value": 0xFFFF0000, "valueTwo": 0x0040000,
                              "op": "SCMP_CMP_MASKED_EQ"}]}]}
    got = _answers(profile)
    assert got["keyctl"] == errno.EPERM and got["getpid"] == 0
    assert got["personality ADDR_NO_RANDOMIZE"] == 95 and got["personality query"] == 0


@pytest.mark.parametrize("rule,match", [
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}, "errnoRet"),
    ({"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}, "errnoRet"),
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW",
      "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}, "index"),
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW",
      "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}, "uint64"),
    ({"names": "read", "action": "SCMP_ACT_ALLOW"}, "list"),
])
def test_invalid_rules_are_refused(rule: dict, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        seccomp.validate({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rule]})
