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
takes longer than ``CHUNK_DEADLINE``: a registry trickling bytes cannot hold a read, it
is handed to the relay and its minimum pace.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from services.core.cancel import Cancel
from vocab.errors import Cancelled
from vocab.version import VERSION

CHUNK = 1 << 20
STALL = 2.0  # seconds to connect, or for a read to wait for a byte
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
             cancel: Cancel | None = None) -> Iterator[bytes]:
    """The blob's bytes ``offset`` to ``size`` (exclusive), in chunks of up to 1 MiB;
    ``HandOver`` where the direct download stops early, ``Cancelled`` when ``cancel``
    is set (which also wakes a read waiting for bytes)."""
    if offset >= size:
        return
    conn, sock, resp = _open(where, offset, size)
    forget = cancel.on_set(lambda: _shut(sock)) if cancel is not None else (lambda: None)
    watchdog = _Watchdog(sock)
    try:
        first = where.probe_bytes if where.probe_bytes and where.min_bytes_per_second \
            else 0
        got = offset
        while got < size:
            want = min(first or CHUNK, size - got)
            began = time.monotonic()
            watchdog.arm(began + CHUNK_DEADLINE)
            try:
                data = resp.read(want)
            except (OSError, http.client.HTTPException) as exc:
                _stop_if_cancelled(cancel)
                raise HandOver(f"read failed at {got}: {exc or type(exc).__name__}") \
                    from None
            took = time.monotonic() - began
            watchdog.arm(float("inf"))  # the consumer's time is not the registry's
            _stop_if_cancelled(cancel)
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
        watchdog.stop()
        forget()
        conn.close()


class _Watchdog:
    """Shuts a connection whose current read has run past its deadline."""

    def __init__(self, sock: socket.socket | None) -> None:
        self._sock = sock
        self._deadline = float("inf")
        self._done = threading.Event()
        threading.Thread(target=self._watch, name="direct-watchdog", daemon=True).start()

    def arm(self, deadline: float) -> None:
        self._deadline = deadline

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(_WATCH_EVERY):
            if time.monotonic() > self._deadline:
                _shut(self._sock)
                return


def _open(where: Location, offset: int, size: int
          ) -> tuple[http.client.HTTPConnection, socket.socket | None,
                     http.client.HTTPResponse]:
    """The connection, its socket and the response carrying bytes ``offset`` to the end,
    after redirects; HandOver for anything but exactly those bytes."""
    url = where.url
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        headers = {"User-Agent": f"muelle/{VERSION}", "Accept-Encoding": "identity"}
        if _origin(url) == origin:  # as httpx: credentials never leave their origin
            headers.update(where.headers)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        conn = _connection(parts)
        try:
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                         headers=headers)
            # Taken now: a response that closes the connection takes the socket along
            # (conn.sock is None then), and a cancel or the watchdog must shut it.
            sock = conn.sock
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()
            raise HandOver(f"GET {parts.netloc}: {exc or type(exc).__name__}") from None
        location = resp.getheader("Location")
        if resp.status in _REDIRECTS and location:
            conn.close()
            url = urllib.parse.urljoin(url, location)
            continue
        want = size - offset
        ok = (resp.status == 200 and not offset) or (
            resp.status == 206
            and (resp.getheader("Content-Range") or "").startswith(f"bytes {offset}-"))
        if not ok or resp.getheader("Content-Length") != str(want) or resp.chunked:
            conn.close()
            raise HandOver(f"GET {parts.netloc} answered {resp.status}, "
                           f"Content-Length {resp.getheader('Content-Length')}")
        return conn, sock, resp
    raise HandOver(f"more than {MAX_REDIRECTS} redirects")


def _connection(parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.netloc, timeout=STALL)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.netloc, timeout=STALL,
                                           context=ssl.create_default_context())
    raise HandOver(f"unsupported URL scheme {parts.scheme!r}")


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _shut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)


def _stop_if_cancelled(cancel: Cancel | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("pull cancelled")
