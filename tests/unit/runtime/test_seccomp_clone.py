"""The default profile's clone mask, installed: namespace flags are refused, forks and
threads are not.

The shim writes the profile (seccomp_profile.default_profile), muelle-runtime compiles and
installs it (seccomp.compile_bpf / install); here both run in a child (a fresh interpreter)
that then calls clone and unshare directly, so a wrong mask value (not only a wrong literal) shows.
No root needed: the filter is installed under no_new_privs, and an unprivileged process may
create user namespaces, so a mask that lets CLONE_NEWUSER through is seen to do so.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import threading
from typing import Any

import pytest

from services.runtime import seccomp
from services.shim import seccomp_profile
from services.shim.spec import DEFAULT_CAPS
from tests.unit.runtime import filtered_child

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="x86_64 system call numbers")

NR_CLONE, NR_UNSHARE = 56, 272
CLONE_FLAGS = {"NEWNS": 0x00020000, "NEWCGROUP": 0x02000000, "NEWUTS": 0x04000000,
               "NEWIPC": 0x08000000, "NEWUSER": 0x10000000, "NEWPID": 0x20000000,
               "NEWNET": 0x40000000}


CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID = 0x01000000, 0x00200000


def _raw_clone(libc: Any, flags: int, tid: bool = False) -> int:
    """clone(flags|SIGCHLD) without a new stack (a fork); errno, or 0 if a child was made.
    ``tid``: with a child tid word, as glibc's fork passes one."""
    ctypes.set_errno(0)
    word = ctypes.c_int(0)
    ctid = ctypes.addressof(word) if tid else 0
    # x86_64: clone(flags, stack, parent_tid, child_tid, tls)
    ret = libc.syscall(ctypes.c_long(NR_CLONE), ctypes.c_long(flags | signal.SIGCHLD),
                       ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(ctid),
                       ctypes.c_long(0))
    if ret == 0:
        os._exit(0)  # the child the clone made: only the caller reports
    if ret < 0:
        return int(ctypes.get_errno())
    os.waitpid(ret, 0)
    return 0


def clone_calls(libc: Any) -> dict[str, int]:
    """Run in the filtered child (filtered_child.answers)."""
    out = {f"clone {name}": _raw_clone(libc, flag) for name, flag in CLONE_FLAGS.items()}
    out["clone"] = _raw_clone(libc, 0)
    # glibc's fork is clone(CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD), made raw.
    out["fork"] = _raw_clone(libc, CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID, tid=True)
    ran = threading.Event()  # pthread_create: clone3 (ENOSYS), then clone(CLONE_VM|...)
    thread = threading.Thread(target=ran.set)
    thread.start()
    thread.join()
    out["thread"] = 0 if ran.is_set() else -1
    ctypes.set_errno(0)  # last: in a new user namespace the rest would differ
    ret = libc.syscall(ctypes.c_long(NR_UNSHARE), ctypes.c_long(CLONE_FLAGS["NEWUSER"]))
    out["unshare NEWUSER"] = 0 if ret == 0 else ctypes.get_errno()
    return out


def _answers(capabilities: list[str]) -> dict[str, int]:
    """Install the default profile for ``capabilities`` in a child; name -> errno."""
    profile = seccomp_profile.default_profile(capabilities, "x86_64")
    return filtered_child.answers(seccomp.compile_bpf(profile, lambda m: None),
                                  f"{__name__}:clone_calls")


def test_namespace_clones_are_refused_without_sys_admin() -> None:
    got = _answers(list(DEFAULT_CAPS))
    assert got == {**{f"clone {name}": errno.EPERM for name in CLONE_FLAGS},
                   "clone": 0, "fork": 0, "thread": 0, "unshare NEWUSER": errno.EPERM}


def test_sys_admin_lets_clone_newuser_through() -> None:
    # With CAP_SYS_ADMIN the filter allows the call; the kernel then makes the namespace (an
    # unprivileged user may) or answers with its own errno, never the filter's EPERM.
    got = _answers([*DEFAULT_CAPS, "CAP_SYS_ADMIN"])
    assert got["clone NEWUSER"] != errno.EPERM and got["unshare NEWUSER"] != errno.EPERM
    assert got["clone"] == got["fork"] == got["thread"] == 0
