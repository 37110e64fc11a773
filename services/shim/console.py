"""The console socket (runc's ``--console-socket``): how a runtime hands over a pty master.

The runtime connects to the unix socket and sends the master fd with SCM_RIGHTS; whoever
listens (the monitor for a container, the shim for an exec) then owns the terminal: it
reads the output from the master, writes stdin into it, and sets its window size.
Stdlib only: the monitor imports it.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import socket
import struct
import termios


class ConsoleSocket:
    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(1)

    def receive(self, timeout: float = 10.0) -> int:
        """The pty master the runtime sent; OSError if none came within ``timeout``."""
        probe = select.poll()  # not select.select: the shim's fds go past 1024 (waitfd.py)
        probe.register(self.sock, select.POLLIN)
        if not probe.poll(max(0, int(timeout * 1000 + 0.999))):
            raise OSError("the runtime sent no terminal on the console socket")
        conn, _ = self.sock.accept()
        with conn:
            fds = array.array("i")
            _msg, ancdata, _flags, _addr = conn.recvmsg(
                4096, socket.CMSG_SPACE(fds.itemsize))
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        if not fds:
            raise OSError("no terminal fd in the console socket message")
        for extra in fds[1:]:
            os.close(extra)
        os.set_inheritable(fds[0], False)
        return fds[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def set_size(fd: int, rows: int, cols: int) -> None:
    """Set a terminal's window size (the kernel signals SIGWINCH to its foreground)."""
    if rows > 0 and cols > 0:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
