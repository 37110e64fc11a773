"""The container's stdin, owned by its monitor (``run -i``; conmon's attach socket).

With ``--stdin-socket PATH`` the monitor gives the container a pipe as stdin and keeps
its write end; it listens on a unix socket at PATH, and copies the bytes of each
connection into the pipe. A connection sends frames (4-byte big-endian length, bytes);
an empty frame is the client's EOF, which closes the container's stdin when
``stdin_once`` (``docker run -i`` attached: the client's EOF is the container's).
A connection that just ends is a detach (ctrl-p ctrl-q, a client gone): the pipe stays
open for the next attach. A frame whose length has the top bit set is a control message
(JSON, ``{"resize": [rows, cols]}``) for a container with a terminal: then stdin bytes
go into the pty master rather than a pipe. A thread does the copying, so a
container that does not read its stdin blocks only that thread, never the log pump.

Stdlib only: it runs in the monitor (tests/unit/shim/test_monitor_lean.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from services.shim.console import set_size


def socket_path(run_dir: str, cid: str, kind: str = "sock") -> str:
    """Where a container's stdin (or console) socket lives (short: unix socket paths are
    at most 108 bytes)."""
    return os.path.join(run_dir, "io", f"{cid[:32]}.{kind}")


CONTROL = 0x80000000


class StdinRelay:
    def __init__(self, path: str, stdin_once: bool, open_stdin: bool = True,
                 terminal: bool = False) -> None:
        self.path = path
        self.stdin_once = stdin_once
        self.open_stdin = open_stdin
        self.master = -1
        # With a terminal the runtime makes the pty: stdin goes to its master later.
        self.read_fd, self.write_fd = os.pipe() if open_stdin and not terminal else (-1, -1)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        os.chmod(path, 0o600)
        self.server.listen(4)
        self._lock = threading.Lock()
        self._closed = False

    def container_side_sent(self) -> None:
        """The runtime has the read end now: drop ours, so the container sees EOF."""
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1

    def attach_terminal(self, master: int) -> None:
        """The container's pty master: stdin is written into it, resizes applied to it."""
        self.master = master
        if self.open_stdin:
            self.write_fd = os.dup(master)

    def start(self) -> None:
        threading.Thread(target=self._serve, name="stdin", daemon=True).start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                eof = self._copy(conn.makefile("rb"))
            if eof and self.stdin_once:
                self.close_stdin()
                return

    def _copy(self, conn: BinaryIO) -> bool:
        """Copy one connection's frames into the pipe; True at an empty frame (EOF)."""
        while True:
            try:
                head = conn.read(4)
                if len(head) != 4:
                    return False  # detached
                size = int.from_bytes(head, "big")
                data = conn.read(size & ~CONTROL)
            except OSError:
                return False
            if size & CONTROL:
                self._control(data)
                continue
            if not data:
                return True
            with self._lock:
                if self._closed or self.write_fd < 0:
                    continue  # stdin not open (-t without -i): dropped
                try:
                    os.write(self.write_fd, data)  # blocks while the container does not read
                except OSError:  # the container closed its stdin (EPIPE)
                    return True

    def _control(self, data: bytes) -> None:
        try:
            msg = json.loads(data)
            rows, cols = (int(n) for n in msg["resize"])
        except (ValueError, KeyError, TypeError):
            return
        if self.master >= 0:
            set_size(self.master, rows, cols)

    def close_stdin(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.write_fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self.write_fd)

    def close(self) -> None:
        """The container exited: stop listening, remove the socket."""
        with contextlib.suppress(OSError):
            self.server.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.close_stdin()


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def control(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return (len(data) | CONTROL).to_bytes(4, "big") + data


def send(path: str, chunks: Iterable[bytes | tuple[int, int]],
         eof: Callable[[], bool]) -> None:
    """Client side (the shim): copy ``chunks`` into the container's stdin socket, and
    (rows, cols) tuples as resizes; at their end, an EOF frame if ``eof()`` says the
    client closed its stdin (else: detached)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        for chunk in chunks:
            if isinstance(chunk, tuple):
                sock.sendall(control({"resize": list(chunk)}))
            elif chunk:
                sock.sendall(frame(chunk))
        if eof():
            sock.sendall(frame(b""))
