"""Compiled seccomp filters: cached by profile, and installed they act as libseccomp's load."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from services.runtime import seccomp
from tests.unit.runtime import filtered_child

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                         "errnoRet": errno.EACCES}]}


def make_dir(libc: Any, path: str) -> dict[str, int]:
    """Run in the filtered child: mkdir ``path``; its errno (0 = made)."""
    try:
        os.mkdir(path)
    except OSError as exc:
        return {"mkdir": exc.errno or -1}
    return {"mkdir": 0}


def make_then_remove(libc: Any, path: str) -> dict[str, int]:
    """Run in the filtered child: makedirs (allowed: not in the rules), then rmdir."""
    os.makedirs(path, exist_ok=True)
    try:
        os.rmdir(path)
    except OSError as exc:
        return {"rmdir": exc.errno or -1}
    return {"rmdir": 0}


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
    got = filtered_child.answers(bpf, f"{__name__}:make_dir", str(tmp_path / "x"))
    assert got == {"mkdir": errno.EACCES}
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
    got = filtered_child.answers(bpf, f"{__name__}:make_then_remove", str(tmp_path))
    assert got == {"rmdir": errno.EACCES}
    assert tmp_path.exists()
