"""The monitor fork server: a warm, lean process that forks a monitor per container.

Starting ``python -m services.shim.monitor`` costs an interpreter start and its imports
(~50 ms on a 2-vCPU VM) for every container run, and muelle's own runtime as many again
for ``create`` and ``delete``. The shim instead starts this server once: it imports the
monitor and muelle-runtime modules (stdlib only, no grpc) and then, per request, forks.
The monitor it forks is already warm, and can fork muelle's runtime warm in turn
(monitor.spawn).

Each monitor lives in its own session (setsid), so it outlives the server and the shim
exactly like the ``setsid -f python -m services.shim.monitor`` spawn this replaces (which
stays as the fallback). A request goes to a standby monitor forked ahead of it (Standby)
when there is one; else the server forks twice, setsid between, and the monitor is
re-parented away. The server ignores SIGCHLD, so the monitors that are its children are
reaped as they exit. The server itself exits when the shim's end of the socket closes,
so a killed shim leaves no server behind; its monitors are not affected (nor is a
standby: it exits when the server's end of its own socket closes).

Protocol, on a SOCK_SEQPACKET pair: the shim sends one JSON request
``{"argv": [...monitor args...], "log": path, "cwd": dir}`` with the sync fd attached
(SCM_RIGHTS); the server answers ``{"pid": N}`` (the monitor's pid, or the forked
session leader's, which exits at once) or ``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil  # noqa: F401 - store.remove's, imported before any fork (see below)
import signal
import socket
import sys

from services.runtime import api
from services.shim import monitor

# typing at run time is not needed here (annotations only); mypy treats TYPE_CHECKING
# as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Here, before any fork, so every monitor starts with them loaded, and so does every
# runtime call it runs warm (create and delete; the shim runs start and state
# in-process): what they import lazily (the cgroup drivers, shutil for the state dir, the
# console, libseccomp) would otherwise be loaded again in each forked child (~9 ms per
# delete for the cgroup drivers alone).
api.preload()
monitor.parser()  # built once, inherited by every monitor

MAX_REQUEST = 1 << 20
REFILL_AFTER = 0.05  # seconds without a request before the next standby is forked


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
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        os.chdir(cwd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _name("muelle-monitor")
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


def _receive(sock: socket.socket) -> tuple[bytes, list[int]] | None:
    """One request and the fds it carries; None when the other end has gone."""
    fds: list[int] = []
    try:
        data, ancdata, _flags, _addr = sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(4 * 4))
    except ConnectionResetError:
        return None
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(int.from_bytes(payload[i:i + 4], sys.byteorder)
                       for i in range(0, len(payload) - len(payload) % 4, 4))
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    return data, fds


class Standby:
    """A monitor forked ahead of its request, waiting on a socket of its own: handing it
    a request saves the two forks (~4 ms) from a container's create. The server forks the
    next one when requests pause (REFILL_AFTER). It is the server's child, in a session of its
    own (setsid); the server ignores SIGCHLD, so monitors that exit are reaped at once."""

    def __init__(self, shim: socket.socket) -> None:
        self.sock: socket.socket | None = None
        self.pid = 0
        self.refill(shim)

    def refill(self, shim: socket.socket) -> None:
        if self.sock is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:  # no process to spare now: requests fork as they come
            ours.close()
            theirs.close()
            return
        if pid == 0:
            shim.close()
            ours.close()
            _stand_by(theirs)
        theirs.close()
        self.sock, self.pid = ours, pid

    def hand(self, request: bytes, sync_fd: int) -> int:
        """Give the request to the standby; its pid, or 0 if there is none (or it died)."""
        sock, pid = self.sock, self.pid
        if sock is None:
            return 0
        self.sock, self.pid = None, 0
        try:
            sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                      sync_fd.to_bytes(4, sys.byteorder))])
        except OSError:
            return 0
        finally:
            sock.close()
        return pid


def _stand_by(sock: socket.socket) -> None:
    """In a standby: wait for a request, then become its monitor. Never returns; exits
    when the server has gone (its end of the socket closed)."""
    code = 0
    try:
        os.setsid()
        _name("muelle-standby")  # how `ps` (and bench_memory) tell it from a monitor
        received = _receive(sock)
        sock.close()
        if received is not None:
            data, fds = received
            request = json.loads(data)
            _become_monitor([str(a) for a in request["argv"]], str(request["log"]),
                            str(request["cwd"]), fds[0])
    except BaseException:  # noqa: BLE001 - a forked child must never unwind into the server
        code = 1
    os._exit(code)


def _name(comm: str) -> None:
    """This process's name in ps and /proc/PID/comm (it is the fork server's else)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(comm)


def _serve_one(sock: socket.socket, standby: Standby) -> bool:
    """Handle one request; False when the shim has gone."""
    received = _receive(sock)
    if received is None:
        return False
    data, fds = received
    try:
        request = json.loads(data)
        argv = [str(a) for a in request["argv"]]
        if len(fds) != 1:
            raise ValueError(f"expected one sync fd, got {len(fds)}")
        pid = standby.hand(data, fds[0])
        if not pid:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(argv, str(request["log"]), str(request["cwd"]), fds[0], sock)
            with contextlib.suppress(ChildProcessError):  # reaped already (SIGCHLD ignored)
                os.waitpid(pid, 0)  # the session leader exits as soon as it forked
        reply: dict[str, Any] = {"pid": pid}
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
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        sys.exit("usage: python -m services.shim.forkserver FD")
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # standbys become monitors: no zombies
    sock = socket.socket(fileno=int(args[0]))
    standby = Standby(sock)
    while True:
        # The next standby is forked once requests pause for REFILL_AFTER: forked at once,
        # it competed for the CPU with the create it had just started.
        if standby.sock is None and not select.select([sock], [], [], REFILL_AFTER)[0]:
            standby.refill(sock)
            continue
        if not _serve_one(sock, standby):
            break


if __name__ == "__main__":
    main()
