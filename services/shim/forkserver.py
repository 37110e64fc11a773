"""The monitor fork server: a warm, lean process that forks a monitor per container.

Starting ``python -m services.shim.monitor`` costs an interpreter start and its imports
(~50 ms on a 2-vCPU VM) for every container run, and muelle's own runtime as many again
for ``create`` and ``delete``. The shim instead starts this server once: it imports the
monitor and muelle-runtime modules (stdlib only, no grpc) and then, per request, forks.
The monitor it forks is already warm, and can fork muelle's runtime warm in turn
(monitor.spawn).

The server forks twice with ``setsid`` between, so each monitor is re-parented away and
lives in its own session: it outlives the server and the shim exactly like the
``setsid -f python -m services.shim.monitor`` spawn this replaces (which stays as the
fallback). The server itself exits when the shim's end of the socket closes, so a killed
shim leaves no server behind; its monitors are not affected.

Protocol, on a SOCK_SEQPACKET pair: the shim sends one JSON request
``{"argv": [...monitor args...], "log": path, "cwd": dir}`` with the sync fd attached
(SCM_RIGHTS); the server answers ``{"pid": N}`` (the forked session leader's pid, which
exits at once) or ``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil  # noqa: F401 - store.remove's, imported before any fork (see below)
import signal
import socket
import sys

from services.core.errors import MuelleError

# Imported here, before any fork, so every monitor starts with them loaded, and so does
# every runtime command it forks warm (create and delete; the shim runs start and state
# in-process): what they import lazily (the cgroup drivers, shutil for the state dir, the
# console) would otherwise be imported again in each forked child (~9 ms per delete for
# the cgroup drivers alone).
from services.runtime import console, create, delete, seccomp  # noqa: F401
from services.runtime import main as runtime_main
from services.runtime.cgroups import v1, v2  # noqa: F401
from services.shim import monitor

runtime_main.parser()  # built here, inherited by every warm runtime command
monitor.parser()  # and by every monitor

MAX_REQUEST = 1 << 20


def _child(argv: list[str], log_path: str, cwd: str, sync_fd: int, sock: socket.socket) -> None:
    """In the session leader: fork the monitor and leave. Never returns."""
    code = 0
    try:
        os.setsid()
        if os.fork() == 0:
            sock.close()
            _become_monitor(argv, log_path, cwd, sync_fd)
    except BaseException:  # noqa: BLE001 - a forked child must never unwind into the server
        code = 1
    os._exit(code)


def _become_monitor(argv: list[str], log_path: str, cwd: str, sync_fd: int) -> None:
    code = 2
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        os.chdir(cwd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        monitor.main([*argv, "--sync-fd", str(sync_fd)])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - last resort, never unwind
        with contextlib.suppress(OSError):
            os.write(2, f"monitor crashed: {type(exc).__name__}: {exc}\n".encode())
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve_one(sock: socket.socket) -> bool:
    """Handle one request; False when the shim has gone."""
    fds: list[int] = []
    try:
        data, ancdata, _flags, _addr = sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(4 * 4))
    except ConnectionResetError:
        return False
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(int.from_bytes(payload[i:i + 4], sys.byteorder)
                       for i in range(0, len(payload) - len(payload) % 4, 4))
    if not data:
        for fd in fds:
            os.close(fd)
        return False
    try:
        request = json.loads(data)
        argv = [str(a) for a in request["argv"]]
        if len(fds) != 1:
            raise ValueError(f"expected one sync fd, got {len(fds)}")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(argv, str(request["log"]), str(request["cwd"]), fds[0], sock)
        os.waitpid(pid, 0)  # the session leader exits as soon as it forked the monitor
        reply: dict = {"pid": pid}
    except Exception as exc:  # noqa: BLE001 - report, keep serving
        reply = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    with contextlib.suppress(OSError):
        sock.send(json.dumps(reply).encode())
    return True


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(MuelleError):  # no libseccomp: only seccomp'd creates fail
        seccomp.preload()  # dlopen it once, for every container's create
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        sys.exit("usage: python -m services.shim.forkserver FD")
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=int(args[0]))
    while _serve_one(sock):
        pass


if __name__ == "__main__":
    main()
