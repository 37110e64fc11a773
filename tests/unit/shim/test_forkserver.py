"""The monitor fork server: lean like the monitor, and gone when its shim's end closes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
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


def _server() -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """A fork server on a socket pair, as the shim starts it; our end of the pair."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-S", "-m", "services.shim.forkserver",
                             str(theirs.fileno())], pass_fds=(theirs.fileno(),), cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO))
    theirs.close()
    return ours, proc


def test_fork_server_exits_when_the_shim_end_closes() -> None:
    ours, proc = _server()
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


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_standby_monitor_takes_the_request_and_another_is_forked(tmp_path: Path) -> None:
    ours, proc = _server()
    try:
        deadline = time.monotonic() + 10
        while not (before := _children(proc.pid)):
            assert time.monotonic() < deadline, "no standby forked"
            time.sleep(0.02)
        standby = next(iter(before))
        while Path(f"/proc/{standby}/comm").read_text().strip() != "muelle-standby":
            assert time.monotonic() < deadline, "the standby is not named"
            time.sleep(0.02)
        read_fd, write_fd = os.pipe()
        log = tmp_path / "monitor.log"
        request = json.dumps({"argv": ["--no-such-option"], "log": str(log), "cwd": "/"})
        ours.sendmsg([request.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                           write_fd.to_bytes(4, sys.byteorder))])
        os.close(write_fd)
        pid = json.loads(ours.recv(4096))["pid"]
        assert pid in before  # forked ahead of the request
        # It became that request's monitor (which refuses the option) and was reaped.
        assert os.read(read_fd, 100) == b""
        os.close(read_fd)
        assert _gone(pid)
        assert "muelle-monitor: error" in log.read_text()
        deadline = time.monotonic() + 10
        while not (after := _children(proc.pid)):  # the next one, once requests pause
            assert time.monotonic() < deadline, "no next standby"
            time.sleep(0.02)
        assert len(after) == 1 and pid not in after
        ours.close()  # the server exits, and its standby with it
        assert proc.wait(timeout=10) == 0
        assert _gone(after.pop())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
