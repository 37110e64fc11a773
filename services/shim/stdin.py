"""The container's stdin, owned by its monitor (``run -i``; conmon's attach socket).

With ``--stdin-socket PATH`` the monitor gives the container a pipe as stdin and keeps
its write end; it listens on a unix socket at PATH, and copies the bytes of each
connection into the pipe. A connection sends frames (4-byte big-endian length, bytes);
an empty frame is the client's EOF, which closes the container's stdin when
``stdin_once`` (``docker run -i`` attached: the client's EOF is the container's).
A connection that just ends is a detach (ctrl-p ctrl-q, a client gone): the pipe stays
open for the next attach. A frame whose length has the top bit set is a control message
(JSON, ``{"resize": [rows, cols]}``) for a container with a terminal: then stdin bytes
go into the pty master rather than a pipe. A thread does the copying with non-blocking
fds: a container that does not read its stdin holds back its client (the relay reads no
more of the connection until the container took what came), never the log pump. A
container still running after monitor.HANDOFF_AFTER gets the relay, frozen between two
steps, carried on by the native tail (services/shim/native/muelle-monitor.c does the
same steps in C).

Stdlib only: it runs in the monitor (tests/unit/shim/test_monitor_lean.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from services.shim.console import set_size


def socket_path(run_dir: str, cid: str, kind: str = "sock") -> str:
    """Where a container's stdin (or console) socket lives (short: unix socket paths are
    at most 108 bytes)."""
    return os.path.join(run_dir, "io", f"{cid[:32]}.{kind}")


CONTROL = 0x80000000


class StdinRelay:
    """The relay's state lives under one lock and every fd is non-blocking, so the
    monitor can freeze it between two steps and hand it to the native tail: the listening
    socket, an attached client's connection, an unfinished frame and the bytes the
    container has not read yet all go on there (monitor.hand_over)."""

    def __init__(self, path: str, stdin_once: bool, open_stdin: bool = True,
                 terminal: bool = False) -> None:
        self.path = path
        self.stdin_once = stdin_once
        self.open_stdin = open_stdin
        self.master = -1
        # With a terminal the runtime makes the pty: stdin goes to its master later.
        self.read_fd, self.write_fd = os.pipe() if open_stdin and not terminal else (-1, -1)
        if self.write_fd >= 0:
            os.set_blocking(self.write_fd, False)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        os.chmod(path, 0o600)
        self.server.listen(4)
        self.server.setblocking(False)
        self.conn: socket.socket | None = None
        self.inbuf = bytearray()  # an unfinished frame of the client's
        self.pending = bytearray()  # stdin bytes the container has not read yet
        self.close_after = False  # stdin_once's EOF came: close stdin once pending is out
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._generation = 0  # a thread of an older one (before a freeze) stops
        self._closed = False

    def container_side_sent(self) -> None:
        """The runtime has the read end now: drop ours, so the container sees EOF."""
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1

    def attach_terminal(self, master: int) -> None:
        """The container's pty master: stdin is written into it, resizes applied to it.
        Non-blocking from now on (a dup shares the flag): the monitor's pump reads it
        only when it polls readable."""
        self.master = master
        if self.open_stdin:
            self.write_fd = os.dup(master)
            os.set_blocking(self.write_fd, False)

    def start(self) -> None:
        threading.Thread(target=self._serve, args=(self._generation,), name="stdin",
                         daemon=True).start()

    def _serve(self, generation: int) -> None:
        poller = select.poll()
        while True:
            with self._lock:
                if self._closed or generation != self._generation:
                    return
                interest = self._interest()
            for fd in list(interest) + [self._wake_r]:
                poller.register(fd, interest.get(fd, select.POLLIN))
            poller.poll()
            for fd in list(interest) + [self._wake_r]:
                poller.unregister(fd)
            with self._lock:
                if self._closed or generation != self._generation:
                    return
                self._step()

    def _interest(self) -> dict[int, int]:
        """What the relay waits for: a client, its bytes (only once the container took
        the last ones: the back-pressure), or room in stdin for what is pending."""
        interest = {}
        if self.pending and self.write_fd >= 0:
            interest[self.write_fd] = select.POLLOUT
        elif self.conn is not None:
            interest[self.conn.fileno()] = select.POLLIN
        if self.conn is None:
            interest[self.server.fileno()] = select.POLLIN
        return interest

    def _step(self) -> None:
        """Whatever can be done now without blocking (the native tail does the same)."""
        if self.pending and self.write_fd >= 0:
            try:
                done = os.write(self.write_fd, self.pending)
            except BlockingIOError:
                done = 0
            except OSError:  # the container closed its stdin (EPIPE): as its EOF
                self.pending.clear()
                self._end_of_input()
                done = 0
            del self.pending[:done]
        if not self.pending and self.close_after:
            self.close_stdin()
        if self.conn is None:
            with contextlib.suppress(OSError):  # none waiting, or it gave up (ECONNABORTED)
                self.conn, _ = self.server.accept()
                self.conn.setblocking(False)
        if self.conn is not None and not self.pending:
            try:
                data = self.conn.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the client left without an EOF: a detach, stdin stays open
                self._drop_client()
                return
            self.inbuf += data
            self._frames()
            # An EOF with nothing left to write closes stdin now: the next poll waits only
            # for events, and none would come for it (close_after set after the write above).
            if not self.pending and self.close_after:
                self.close_stdin()

    def _frames(self) -> None:
        while len(self.inbuf) >= 4:
            size = int.from_bytes(self.inbuf[:4], "big")
            end = 4 + (size & ~CONTROL)
            if len(self.inbuf) < end:
                return
            data = bytes(self.inbuf[4:end])
            del self.inbuf[:end]
            if size & CONTROL:
                self._control(data)
            elif not data:
                self._end_of_input()
                return
            elif self.write_fd >= 0:
                self.pending += data
            # else: stdin not open (-t without -i) or closed: dropped

    def _end_of_input(self) -> None:
        """The client's EOF: it is done; with stdin_once the container's stdin closes."""
        self._drop_client()
        if self.stdin_once:
            self.close_after = True

    def _drop_client(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.inbuf.clear()

    def _control(self, data: bytes) -> None:
        try:
            msg = json.loads(data)
            rows, cols = (int(n) for n in msg["resize"])
        except (ValueError, KeyError, TypeError):
            return
        if self.master >= 0:
            set_size(self.master, rows, cols)

    def close_stdin(self) -> None:
        self.close_after = False
        self.pending.clear()
        if self.write_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.write_fd)
            self.write_fd = -1

    def freeze(self) -> dict[str, Any]:
        """Stop relaying between two steps, for the hand-over; what the native tail needs
        to go on (its fds stay open here). thaw() goes on in Python if the exec failed."""
        with self._lock:
            self._generation += 1
            os.write(self._wake_w, b"x")
            return {"listen": self.server.fileno(),
                    "conn": self.conn.fileno() if self.conn is not None else -1,
                    "stdin": self.write_fd, "master": self.master, "once": self.stdin_once,
                    "close_after": self.close_after, "inbuf": bytes(self.inbuf),
                    "pending": bytes(self.pending)}

    def thaw(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 64)
        self.start()

    def close(self) -> None:
        """The container exited: stop listening, remove the socket."""
        with self._lock:
            self._closed = True
            os.write(self._wake_w, b"x")
            with contextlib.suppress(OSError):
                self.server.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._drop_client()
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
