"""How the shim starts a container's monitor: forked by the warm fork server
(services/shim/forkserver.py), or, if that server cannot be had, as a fresh
``setsid -f python -S -m services.shim.monitor`` process. Both give the same detached
monitor in its own session; the first saves an interpreter start per container.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from services.core import modes
from services.core.logging import get_logger
from services.runtime import api

REPO = str(Path(__file__).resolve().parents[2])
REPLY_TIMEOUT = 30.0


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p))


class Spawner:
    """Starts monitors. Thread-safe; the fork server is started on first use and again
    if it died."""

    def __init__(self, log_path: Path, use_forkserver: bool = True) -> None:
        self.log_path = log_path
        self.use_forkserver = use_forkserver
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self.log = get_logger(component="spawner")

    def spawn(self, monitor_argv: list[str], sync_fd: int, log: Path) -> None:
        """Start ``services.shim.monitor`` with ``monitor_argv`` (without --sync-fd),
        handing it ``sync_fd``; its stdout/stderr go to ``log``."""
        if self.use_forkserver:
            with self._lock:
                try:
                    self._forked(monitor_argv, sync_fd, log)
                    return
                except OSError as exc:
                    self.log.warning("fork server unavailable, spawning", error=str(exc))
                    self._stop_locked()
        self._exec(monitor_argv, sync_fd, log)

    def close(self) -> None:
        with self._lock:
            self._stop_locked()

    # ---------------------------------------------------------------- fork server

    def _forked(self, argv: list[str], sync_fd: int, log: Path) -> None:
        sock = self._server()
        request = json.dumps({"argv": argv, "log": str(log), "cwd": REPO}).encode()
        sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                  sync_fd.to_bytes(4, sys.byteorder))])
        reply = sock.recv(65536)
        if not reply:
            raise OSError("fork server closed the connection")
        answer = json.loads(reply)
        if "pid" not in answer:
            raise OSError(f"fork server: {answer.get('error', answer)}")

    def _server(self) -> socket.socket:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return self._sock
        self._stop_locked()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with os.fdopen(modes.open_private(self.log_path, modes.LOG_FILE, append=True),
                           "ab") as out:
                self._proc = subprocess.Popen(
                    [*api.sealed_command("services.shim.forkserver"), str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=out,
                    stderr=out, cwd=REPO, env=_env())
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(REPLY_TIMEOUT)
        self._sock = ours
        self.log.info("fork server started", pid=self._proc.pid)
        return ours

    def _stop_locked(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the server exits on EOF
            self._sock = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    # ---------------------------------------------------------------- fallback

    @staticmethod
    def _exec(argv: list[str], sync_fd: int, log: Path) -> None:
        with os.fdopen(modes.open_private(log, modes.LOG_FILE, append=True), "ab") as out:
            # setsid -f: the monitor is re-parented away from us (no zombie to reap)
            # and lives in its own session, so it survives the shim.
            starter = subprocess.Popen(
                ["setsid", "-f", *api.sealed_command("services.shim.monitor"), *argv,
                 "--sync-fd", str(sync_fd)],
                pass_fds=(sync_fd,), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                cwd=REPO, env=_env())
        starter.wait()
