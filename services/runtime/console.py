"""``--console-socket``: make a pty in the container and send its master to the caller.

Called in the container's mount namespace (after pivot_root for the init, after setns
for exec), so /dev/ptmx is the container's devpts and the slave is /dev/pts/N inside.
The slave becomes stdin/stdout/stderr and the controlling terminal (setsid first).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import socket
import struct
import termios

from vocab.errors import FailedPrecondition


def connect(path: str) -> int:
    """Connect to the console socket (a host path: before any pivot_root or setns)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise FailedPrecondition(f"console socket {path}: {exc.strerror or exc}") from None
    return sock.detach()


def setup(sock_fd: int, console: str | None = "/dev/console",
          size: dict[str, int] | None = None) -> None:
    """Open a pty, make its slave our stdio and controlling tty, send the master.
    ``size`` is process.consoleSize ({"height": rows, "width": cols})."""
    master, slave = os.openpty()
    try:
        if size and size.get("height") and size.get("width"):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack(
                "HHHH", int(size["height"]), int(size["width"]), 0, 0))
        name = os.ttyname(slave)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if console:
            _bind_console(name, console)
        with socket.socket(fileno=sock_fd) as sock:
            sock.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                            array.array("i", [master]).tobytes())])
    finally:
        os.close(master)
        if slave > 2:
            os.close(slave)


def _bind_console(tty: str, console: str) -> None:
    """/dev/console is a bind of the container's pty, as runc makes it."""
    from services.runtime import linux

    with contextlib.suppress(FileExistsError):
        os.close(os.open(console, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    linux.mount(tty, console, None, linux.MS_BIND)
