"""Compiled seccomp filters: cached by profile, and installed they act as libseccomp's load."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from services.runtime import linux, seccomp

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                         "errnoRet": errno.EACCES}]}


def _in_child(fn) -> int:  # type: ignore[no-untyped-def]
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        except BaseException:  # noqa: BLE001
            os._exit(99)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_cache_compiles_once(tmp_path: Path) -> None:
    first = seccomp.cached_bpf(PROFILE, tmp_path / "c", lambda m: None)
    files = list((tmp_path / "c").iterdir())
    assert len(files) == 1 and files[0].read_bytes() == first and len(first) % 8 == 0
    files[0].write_bytes(first)  # the second call reads the file, not libseccomp
    assert seccomp.cached_bpf(PROFILE, tmp_path / "c", lambda m: None) == first
    other = {**PROFILE, "syscalls": []}
    assert seccomp.cached_bpf(other, tmp_path / "c", lambda m: None) != first


def test_installed_program_denies_like_the_profile(tmp_path: Path) -> None:
    bpf = seccomp.compile_bpf(PROFILE, lambda m: None)

    def child() -> int:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        seccomp.install(bpf)
        try:
            os.mkdir(tmp_path / "x")
        except PermissionError as exc:
            return 7 if exc.errno == errno.EACCES else 8
        return 0

    assert _in_child(child) == 7
    assert not (tmp_path / "x").exists()


def test_rules_are_laid_out_as_a_tree_and_deny_the_same(tmp_path: Path) -> None:
    """libseccomp is asked for a binary tree of syscalls (cheaper for the kernel to cache
    at install, and per syscall); the verdicts stay the profile's."""
    import ctypes

    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["mkdir", "mkdirat", "rmdir", "unlink", "unlinkat",
                                       "rename", "renameat", "symlink", "chroot", "acct"],
                             "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}
    lib = seccomp._lib()
    lib.seccomp_attr_get.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                     ctypes.POINTER(ctypes.c_uint32)]
    ctx = seccomp._build(profile, lambda m: None)
    try:
        layout = ctypes.c_uint32()
        assert lib.seccomp_attr_get(ctx, seccomp._FLTATR_CTL_OPTIMIZE,
                                    ctypes.byref(layout)) == 0
        assert layout.value == seccomp._OPTIMIZE_TREE
    finally:
        lib.seccomp_release(ctx)
    bpf = seccomp.compile_bpf(profile, lambda m: None)

    def child() -> int:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        seccomp.install(bpf)
        os.makedirs(tmp_path, exist_ok=True)  # allowed: stat-like, not in the rules
        try:
            os.rmdir(tmp_path)
        except PermissionError as exc:
            return 7 if exc.errno == errno.EACCES else 8
        return 0

    assert _in_child(child) == 7
    assert tmp_path.exists()
