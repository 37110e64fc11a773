"""Downloading a large blob straight from its registry, where the registry service says
this image store may (registry.v1 LocateBlob), so the bytes skip its relay.

Through the relay every byte crossed a second process and two gRPC stacks: a cold pull
of 5 x 40 MiB from a loopback registry spent ~1 CPU-s on two cores, ~0.35 of it in that
hop, and took ~35% longer than with this path (tests/bench/bench_pull.py).

Only the plain case is taken here: one GET (redirects followed; Authorization only to
the origin it was given for), an answer that is exactly the bytes still missing, and
bytes that keep coming. Anything else ends the download with ``HandOver``: the caller
goes on through FetchBlob from the offset reached, which retries, resumes, splits a slow
transfer into parallel ranges, enforces the minimum pace and reports errors in its own
words. So a registry that refuses, lies about lengths, redirects in circles, starts
slowly (the registry service's probe: a far registry) or trickles gets exactly what it
got before. Digest and size are checked by the caller's ingest, as for any download.

Bytes are read 1 MiB at a time by the C buffered reader (no Python per socket read,
which held the GIL among a pull's other threads). A read waits at most ``STALL`` seconds
for a byte (the socket timeout), and a watchdog shuts the connection when a whole chunk
takes longer than ``CHUNK_DEADLINE``, or connecting and reading an answer's head longer
than ``OPEN_DEADLINE``: a registry trickling bytes or header lines cannot hold the
download, it is handed to the relay and its minimum pace. A cancelled pull shuts the
connection at once.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

from services.core.cancel import Cancel
from vocab.errors import Cancelled
from vocab.version import VERSION

CHUNK = 1 << 20
STALL = 2.0  # seconds to connect, or for a read to wait for a byte
OPEN_DEADLINE = 5.0  # seconds from connecting to the end of an answer's head
CHUNK_DEADLINE = 2.0  # seconds a chunk may take: below 0.5 MiB/s the relay does better
_WATCH_EVERY = 0.25
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


class HandOver(Exception):
    """The direct download stops here; go on through the registry service."""


@dataclass(frozen=True)
class Location:
    """LocateBlob's answer: the URL, its headers, and the probe of the first bytes."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    probe_bytes: int = 0
    min_bytes_per_second: float = 0


def download(where: Location, offset: int, size: int,
             cancel: Cancel | None = None) -> Generator[bytes, None, None]:
    """The blob's bytes ``offset`` to ``size`` (exclusive), in chunks of up to 1 MiB;
    ``HandOver`` where the direct download stops early, ``Cancelled`` when ``cancel``
    is set (which also wakes a wait for a connection, an answer or bytes)."""
    if offset >= size:
        return
    guard = _Guard(cancel)
    try:
        resp = _open(where, offset, size, guard)
        first = where.probe_bytes if where.probe_bytes and where.min_bytes_per_second \
            else 0
        got = offset
        while got < size:
            want = min(first or CHUNK, size - got)
            began = time.monotonic()
            guard.arm(CHUNK_DEADLINE)
            try:
                data = resp.read(want)
            except (OSError, http.client.HTTPException) as exc:
                guard.stop_if_cancelled()
                raise HandOver(f"read failed at {got}: {exc or type(exc).__name__}") \
                    from None
            took = time.monotonic() - began
            guard.disarm()  # the consumer's time is not the registry's
            guard.stop_if_cancelled()
            if data:
                got += len(data)
                yield data
            if len(data) < want:
                raise HandOver(f"stalled or ended at {got} of {size} bytes")
            if first:
                # The registry service's probe (its ranges.py): a far registry or a
                # capped connection is better served by its parallel ranges.
                if len(data) < where.min_bytes_per_second * took:
                    raise HandOver(f"slow start: {len(data)} bytes in {took:.3f} s")
                first = 0
    finally:
        guard.close()


class _Guard:
    """The connection of one download, shut when its current step runs past its deadline
    (a watchdog thread) or the pull is cancelled: either way a blocked connect, read of an
    answer or read of bytes returns at once, and the download hands over or stops."""

    def __init__(self, cancel: Cancel | None) -> None:
        self._cancel = cancel
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._sock: socket.socket | None = None
        self._deadline = float("inf")
        self._done = threading.Event()
        self._forget = cancel.on_set(self._shut) if cancel is not None else (lambda: None)
        threading.Thread(target=self._watch, name="direct-watchdog", daemon=True).start()

    def arm(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def disarm(self) -> None:
        self._deadline = float("inf")

    def use(self, conn: http.client.HTTPConnection) -> None:
        """Guard ``conn`` from now on (a cancel or deadline shuts its socket once it is
        connected); the previous hop's connection is closed."""
        self.release()
        with self._lock:
            self._conn = conn

    def connected(self, conn: http.client.HTTPConnection) -> None:
        # Kept apart: a response that closes its connection takes the socket along
        # (conn.sock is None then), and it must still be shut.
        with self._lock:
            self._sock = conn.sock
        if self._cancel is not None and self._cancel.is_set():
            self._shut()

    def answered(self, resp: http.client.HTTPResponse) -> None:
        self._resp = resp

    def release(self) -> None:
        """Close the connection and its answer (which keeps the socket of a connection
        that was to close after it)."""
        with self._lock:
            conn, self._conn = self._conn, None
            resp, self._resp = self._resp, None
            self._sock = None
        if resp is not None:
            resp.close()
        if conn is not None:
            conn.close()

    def stop_if_cancelled(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled("pull cancelled")

    def close(self) -> None:
        self._done.set()
        self._forget()
        self.release()

    def _shut(self) -> None:
        with self._lock:
            sock = self._sock
        if sock is not None:
            # The plain socket's shutdown, also under TLS: SSLSocket.shutdown drops its
            # TLS state, and reads would then return the raw records still queued.
            with contextlib.suppress(OSError):  # closed already
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _watch(self) -> None:
        while not self._done.wait(_WATCH_EVERY):
            if time.monotonic() > self._deadline:
                self._shut()
                self.disarm()


def _open(where: Location, offset: int, size: int, guard: _Guard) -> http.client.HTTPResponse:
    """The response carrying bytes ``offset`` to the end, after redirects; HandOver for
    anything but exactly those bytes, uncoded."""
    url = where.url
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        headers = {"User-Agent": f"muelle/{VERSION}", "Accept-Encoding": "identity"}
        if _origin(url) == origin:  # as httpx: credentials never leave their origin
            headers.update(where.headers)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        # Connecting, sending and reading the answer's head together get OPEN_DEADLINE:
        # a registry sending "100 Continue" or header lines for ever is cut there.
        guard.arm(OPEN_DEADLINE)
        try:
            parts = urllib.parse.urlsplit(url)
            conn = _connection(parts)
            guard.use(conn)  # the previous hop's is closed
            conn.connect()  # at most STALL
            guard.connected(conn)  # a cancel or the deadline shuts it from now on
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                         headers=headers)
            resp = conn.getresponse()
            guard.answered(resp)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            guard.stop_if_cancelled()
            raise HandOver(f"GET {url}: {exc or type(exc).__name__}") from None
        finally:
            guard.disarm()
        location = resp.getheader("Location")
        if resp.status in _REDIRECTS and location:
            try:
                url = urllib.parse.urljoin(url, location)
            except ValueError as exc:  # "http://[::1": an unparsable target
                raise HandOver(f"redirect to {location!r}: {exc}") from None
            continue
        want = size - offset
        ok = (resp.status == 200 and not offset) or (
            resp.status == 206
            and (resp.getheader("Content-Range") or "").startswith(f"bytes {offset}-"))
        coded = (resp.getheader("Content-Encoding") or "identity").lower() != "identity"
        if not ok or coded or resp.getheader("Content-Length") != str(want) or resp.chunked:
            raise HandOver(f"GET {parts.netloc} answered {resp.status}, Content-Length "
                           f"{resp.getheader('Content-Length')}, Content-Encoding "
                           f"{resp.getheader('Content-Encoding')}")
        return resp
    raise HandOver(f"more than {MAX_REDIRECTS} redirects")


def _connection(parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.netloc, timeout=STALL)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.netloc, timeout=STALL,
                                           context=_tls_context())
    raise HandOver(f"unsupported URL scheme {parts.scheme!r}")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system CAs, loaded once per process (a few ms of CPU each time otherwise, at
    the start of every blob): registries with certs.d material get no location."""
    return ssl.create_default_context()


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.lower()
