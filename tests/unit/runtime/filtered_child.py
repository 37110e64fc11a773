"""Run system calls in a forked child under an installed seccomp filter; the child reports
what each call answered (name -> errno, 0 when it went through) as JSON on a pipe."""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable
from typing import Any

from services.runtime import linux, seccomp

Calls = Callable[[Any], dict[str, int]]  # given libc (use_errno, syscall returns long)


def answers(bpf: bytes, calls: Calls, own_mount_ns: bool = False) -> dict[str, int]:
    """``calls(libc)`` in a child with ``bpf`` installed (no_new_privs set first). With
    ``own_mount_ns`` the child first gets a private mount namespace (root only), in case a
    mount gets through."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            if own_mount_ns:
                linux.unshare(linux.CLONE_NEWNS)
                linux.mount(None, "/", None, linux.MS_PRIVATE | linux.MS_REC)
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.install(bpf)
            os.write(write_fd, json.dumps(calls(libc)).encode())
        except BaseException as exc:  # noqa: BLE001
            os.write(write_fd, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    assert data.startswith(b"{"), data
    return dict(json.loads(data))
