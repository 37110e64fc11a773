"""A minimal SPDY/3.1 client of Kubernetes' streaming protocols, as client-go speaks them
(remotecommand v4 and portforward), for tests of muelle-cri's streaming server."""

from __future__ import annotations

import json
import socket
import struct
import threading
import zlib
from typing import Any
from urllib.parse import urlsplit

from services.cri.streaming import spdy


class Client:
    def __init__(self, url: str, protocol: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.sock.sendall((f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                           "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                           f"X-Stream-Protocol-Version: {protocol}\r\n"
                           "Content-Length: 0\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"no upgrade: {head!r}")
            head += chunk
        status, _, self._buf = head.partition(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(status.decode(errors="replace"))
        self._deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
        self._next_id = 1
        self.data: dict[int, bytearray] = {}
        self.finished: set[int] = set()
        self.replied: set[int] = set()
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def open(self, headers: dict[str, str], fin: bool = False) -> int:
        sid, self._next_id = self._next_id, self._next_id + 2
        block = self._deflate.compress(spdy.encode_headers(headers)) + \
            self._deflate.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIBB", sid, 0, 0, 0) + block
        self.sock.sendall(struct.pack(">HHB", 0x8003, spdy.SYN_STREAM, 1 if fin else 0)
                          + len(payload).to_bytes(3, "big") + payload)
        with self._cond:
            self.data[sid] = bytearray()
            if not self._cond.wait_for(lambda: sid in self.replied, 30):
                raise TimeoutError(f"no SYN_REPLY for stream {sid}")
        return sid

    def send(self, sid: int, data: bytes, fin: bool = False) -> None:
        self.sock.sendall(struct.pack(">IB", sid, 1 if fin else 0)
                          + len(data).to_bytes(3, "big") + data)

    def _exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read(self) -> None:
        try:
            while True:
                head = self._exact(8)
                payload = self._exact(int.from_bytes(head[5:8], "big"))
                with self._cond:
                    if head[0] & 0x80:
                        kind = int.from_bytes(head[2:4], "big")
                        if kind == spdy.SYN_REPLY:
                            self._inflate.decompress(payload[4:])
                            self.replied.add(int.from_bytes(payload[:4], "big"))
                    else:
                        sid = int.from_bytes(head[:4], "big")
                        self.data.setdefault(sid, bytearray()).extend(payload)
                        if head[4] & spdy.FLAG_FIN:
                            self.finished.add(sid)
                    self._cond.notify_all()
        except (EOFError, OSError):
            with self._cond:
                self.finished.update(self.data)
                self._cond.notify_all()

    def wait(self, sid: int, timeout: float = 30) -> bytes:
        """All a stream carried, once the server finished it."""
        with self._cond:
            if not self._cond.wait_for(lambda: sid in self.finished, timeout):
                raise TimeoutError(f"stream {sid} did not finish")
            return bytes(self.data[sid])

    def wait_for(self, sid: int, want: bytes, timeout: float = 30) -> None:
        """Until stream ``sid`` has carried ``want`` (it may still be open)."""
        with self._cond:
            if not self._cond.wait_for(lambda: want in self.data[sid], timeout):
                raise TimeoutError(f"stream {sid} did not carry {want!r}")

    def close(self) -> None:
        self.sock.close()


def remotecommand(url: str, stdin: bytes | None = None, tty: bool = False,
                  echoed: bytes = b"") -> tuple[bytes, bytes, dict[str, Any]]:
    """Run an Exec/Attach URL: (stdout, stderr, the Status from the error stream).
    ``echoed``: stdin stays open until stdout has carried it (as a person at a terminal)."""
    c = Client(url, "v4.channel.k8s.io")
    try:
        error = c.open({"streamtype": "error"}, fin=True)
        inp = c.open({"streamtype": "stdin"}) if stdin is not None else 0
        out = c.open({"streamtype": "stdout"}, fin=True)
        err = 0 if tty else c.open({"streamtype": "stderr"}, fin=True)
        if tty:
            resize = c.open({"streamtype": "resize"})
            c.send(resize, json.dumps({"Width": 100, "Height": 30}).encode())
        if inp and echoed:
            c.send(inp, stdin or b"")
            c.wait_for(out, echoed)
            c.send(inp, b"", fin=True)
        elif inp:
            c.send(inp, stdin or b"", fin=True)
        status = json.loads(c.wait(error) or b"{}")
        return c.wait(out), (c.wait(err) if err else b""), status
    finally:
        c.close()


def port_forward(url: str, port: int, request: bytes) -> bytes:
    """Send ``request`` to the pod's ``port`` through a PortForward URL; the reply."""
    c = Client(url, "portforward.k8s.io")
    try:
        headers = {"port": str(port), "requestid": "0"}
        error = c.open({**headers, "streamtype": "error"}, fin=True)
        data = c.open({**headers, "streamtype": "data"})
        c.send(data, request, fin=True)
        reply = c.wait(data)
        problem = c.wait(error)
        if problem:
            raise ConnectionError(problem.decode(errors="replace"))
        return reply
    finally:
        c.close()
