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
