"""Run system calls in a child process under an installed seccomp filter; the child reports
what each call answered (name -> errno, 0 when it went through) as JSON on stdout.

The child is a fresh interpreter, not a fork of the test process: a fork runs the atfork
handlers gRPC registered there, which abort in a child forked while other threads were in
gRPC (seen in whole-suite runs: the child died without a word). ``calls`` is therefore
named, "module:function", a module-level function the child imports and calls with libc.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

_CHILD = r"""
import ctypes, importlib, json, sys
from services.runtime import linux, seccomp
bpf, target, own_mount_ns = bytes.fromhex(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
args = sys.argv[4:]
module, _, name = target.partition(":")
calls = getattr(importlib.import_module(module), name)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
if own_mount_ns:
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_PRIVATE | linux.MS_REC)
linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
seccomp.install(bpf)
answer = json.dumps(calls(libc, *args))
sys.stdout.write(answer)
sys.stdout.flush()
"""


def answers(bpf: bytes, calls: str, *args: str,
            own_mount_ns: bool = False) -> dict[str, int]:
    """``calls`` ("module:function", called with libc and ``args``) in a child with ``bpf``
    installed (no_new_privs set first). With ``own_mount_ns`` the child first gets a
    private mount namespace (root only), in case a mount gets through."""
    done = subprocess.run([sys.executable, "-c", _CHILD, bpf.hex(), calls,
                           "1" if own_mount_ns else "0", *args], cwd=ROOT,
                          capture_output=True, timeout=60)
    assert done.stdout.startswith(b"{"), (done.returncode, done.stdout, done.stderr)
    return dict(json.loads(done.stdout))
