"""A TCP proxy on loopback that caps each connection's download rate: a slow link to a
registry, where one connection cannot fill the line (a long round trip, a CDN's
per-connection cap), without touching the host's traffic control.

    with ThrottledProxy("127.0.0.1:5000", rate=8 << 20) as proxy:
        pull f"{proxy.host}/repo:tag"    # every connection gets at most 8 MiB/s

Only server-to-client bytes are paced; requests pass as they come.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

CHUNK = 64 * 1024


class ThrottledProxy:
    def __init__(self, upstream: str, rate: int) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.rate = rate
        # Bound here, port 0: no window for another process to take a picked port.
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self._open: set[socket.socket] = set()
        self._guard = threading.Lock()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> ThrottledProxy:
        self._spawn(self._accept, self._listener)
        return self

    def close(self) -> None:
        self._stopped.set()
        with self._guard:
            sockets = list(self._open)
        for sock in [*sockets, self._listener]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> ThrottledProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._guard:
                if self._stopped.is_set():  # close() ran meanwhile and will not see these
                    client.close()
                    server.close()
                    return
                self._open |= {client, server}
            self._spawn(self._pump, client, server, 0)
            self._spawn(self._pump, server, client, self.rate)

    def _pump(self, src: socket.socket, dst: socket.socket, rate: int) -> None:
        free_at = time.monotonic()  # when the link may carry the next byte (no bursts)
        try:
            while data := src.recv(CHUNK):
                if rate:
                    now = time.monotonic()
                    free_at = max(free_at, now) + len(data) / rate
                    if free_at - now > 0:
                        time.sleep(free_at - now)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with self._guard:
                self._open.discard(src)
            src.close()
