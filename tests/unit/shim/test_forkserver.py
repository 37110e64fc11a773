"""The monitor fork server: lean like the monitor, and gone when its shim's end closes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[3])


def test_fork_server_imports_no_grpc_protobuf_or_structlog() -> None:
    probe = "import sys, services.shim.forkserver; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True,
                         check=True, cwd="/", env=dict(os.environ, PYTHONPATH=REPO)).stdout
    modules = set(out.split())
    for heavy in ("grpc", "google.protobuf", "structlog", "services.core.config", "muelle"):
        assert heavy not in modules, heavy
    # what it preloads for every monitor
    assert {"services.shim.monitor", "services.runtime.create"} <= modules


def test_fork_server_exits_when_the_shim_end_closes() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-S", "-m", "services.shim.forkserver",
                             str(theirs.fileno())], pass_fds=(theirs.fileno(),), cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO))
    theirs.close()
    try:
        # A request without the sync fd is refused, and the server keeps serving.
        ours.send(b'{"argv": [], "log": "/dev/null", "cwd": "/"}')
        assert b"expected one sync fd" in ours.recv(4096)
        ours.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
