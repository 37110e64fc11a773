"""A TCP proxy on loopback in front of a server (the real registry): it counts the bytes
the server sends back, and can pace each connection like a slow link.

    with CountingProxy(registry.host) as proxy:   # proxy.host -> "127.0.0.1:PORT"
        ...pull from proxy.host...
        proxy.downstream_bytes                    # what a pull took from upstream

    CountingProxy(registry.host, rate=8 << 20)    # every connection at most 8 MiB/s:
                                                  # a far registry, or a CDN's cap

    CountingProxy(registry.host, hold_after=1 << 20)  # stops passing server bytes once
    proxy.held.wait(60); ...; proxy.release()         # 1 MiB went through, until released:
                                                      # a pull stopped at a known point

Pacing needs no traffic control on the host; only server-to-client bytes are paced.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

CHUNK = 1 << 16


class CountingProxy:
    def __init__(self, target: str, rate: int = 0, listen: str = "127.0.0.1",
                 hold_after: int | None = None) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.rate = rate  # bytes/s per connection, server to client; 0: as fast as it goes
        # Bound here, port 0: no window for another process to take a picked port.
        self.listener = socket.create_server((listen, 0))
        self.host = f"{listen}:{self.listener.getsockname()[1]}"
        self.downstream_bytes = 0  # server -> client
        self.hold_after = hold_after
        self.held = threading.Event()  # set once a connection waits at the hold point
        self._flowing = threading.Event()
        self.connections = 0
        self._lock = threading.Lock()
        self._closed = False
        self._socks: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def release(self) -> None:
        """Let bytes flow again after the hold point (no further hold)."""
        self._flowing.set()

    def close(self) -> None:
        self._flowing.set()  # a held pump must not outlive the proxy
        self.listener.close()
        with self._lock:
            self._closed = True
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        self._thread.join(5)

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:  # close() ran meanwhile and will not see these
                    client.close()
                    server.close()
                    return
                self.connections += 1
                self._socks += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        free_at = time.monotonic()  # when the paced link may carry the next byte (no bursts)
        try:
            while data := src.recv(CHUNK):
                if downstream and self.rate:
                    now = time.monotonic()
                    free_at = max(free_at, now) + len(data) / self.rate
                    if free_at > now:
                        time.sleep(free_at - now)
                if downstream and self.hold_after is not None and not self._flowing.is_set():
                    data = self._hold(data, dst)
                dst.sendall(data)
                if downstream:
                    with self._lock:
                        self.downstream_bytes += len(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _hold(self, data: bytes, dst: socket.socket) -> bytes:
        """Send what fits before the hold point, wait there for release(); the rest."""
        assert self.hold_after is not None
        with self._lock:
            room = max(0, self.hold_after - self.downstream_bytes)
        if room >= len(data):
            return data
        dst.sendall(data[:room])
        with self._lock:
            self.downstream_bytes += room
        self.held.set()
        self._flowing.wait()
        return data[room:]

def main() -> None:
    """``python -m tests.support.counting_proxy TARGET LISTEN_IP``: the proxy as a process
    (in a network-namespace host, tests/support/hosts.py). Prints its host:port, then
    the downstream byte count for each line read from stdin; stops at EOF."""
    import sys

    with CountingProxy(sys.argv[1], listen=sys.argv[2]) as proxy:
        print(proxy.host, flush=True)
        for _ in sys.stdin:
            print(proxy.downstream_bytes, flush=True)


if __name__ == "__main__":
    main()
