"""imagestore/direct.py against real HTTP servers on loopback: the plain case is
downloaded, anything unusual is handed over (to FetchBlob) with what came so far."""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.core.cancel import Cancel
from services.imagestore import direct
from services.imagestore.direct import HandOver, Location
from tests.support.tls import issue, make_ca
from vocab.errors import Cancelled

BLOB = os.urandom(3 * direct.CHUNK + 12345)

# answer(handler): writes the whole answer to one request
Answer = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """A loopback HTTP server answering GETs with ``answer``; records what it was sent."""

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.seen: list[dict[str, str]] = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.seen.append({"path": self.path, **dict(self.headers.items())})
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    server.answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(answer: Answer, tls: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(answer, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def blob_answer(data: bytes = BLOB, piece: int = 65536, pause: float = 0.0,
                stopping: threading.Event | None = None) -> Answer:
    """The blob (from a ``Range: bytes=N-``), written ``piece`` bytes at a time."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        start = int(h.headers.get("Range", "bytes=0-")[6:-1])
        h.send_response(206 if start else 200)
        h.send_header("Content-Length", str(len(data) - start))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        for at in range(start, len(data), piece):
            h.wfile.write(data[at:at + piece])
            h.wfile.flush()
            if pause and stopping is not None and stopping.wait(pause):
                return

    return answer


def fetch(where: Location, offset: int = 0, cancel: Cancel | None = None
          ) -> tuple[bytes, HandOver | None]:
    got = bytearray()
    try:
        for data in direct.download(where, offset, len(BLOB), cancel):
            got += data
    except HandOver as stop:
        return bytes(got), stop
    return bytes(got), None


def test_the_plain_case_comes_whole_in_chunks(serve: Callable[[Answer], Server]) -> None:
    server = serve(blob_answer())
    chunks = list(direct.download(Location(f"{server.url}/b", {"Authorization": "Bearer t"}),
                                  0, len(BLOB)))
    assert b"".join(chunks) == BLOB
    assert [len(c) for c in chunks[:3]] == [direct.CHUNK] * 3
    assert server.seen[0]["Authorization"] == "Bearer t"
    assert server.seen[0]["Accept-Encoding"] == "identity"


def test_from_an_offset(serve: Callable[[Answer], Server]) -> None:
    server = serve(blob_answer())
    assert fetch(Location(f"{server.url}/b"), 1000) == (BLOB[1000:], None)
    assert server.seen[0]["Range"] == "bytes=1000-"


@pytest.mark.parametrize("status", [401, 404, 500])
def test_an_error_status_is_handed_over_before_any_byte(
        serve: Callable[[Answer], Server], status: int) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()

    got, stop = fetch(Location(f"{serve(answer).url}/b"))
    assert got == b"" and stop is not None and str(status) in str(stop)


@pytest.mark.parametrize("length", [str(1 << 40), str(len(BLOB) - 1), None])
def test_another_length_is_handed_over_before_reading(
        serve: Callable[[Answer], Server], length: str | None) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        if length is not None:
            h.send_header("Content-Length", length)
        h.end_headers()
        h.wfile.write(BLOB)

    got, stop = fetch(Location(f"{serve(answer).url}/b"))
    assert got == b"" and stop is not None


def test_a_range_answered_from_zero_is_handed_over(serve: Callable[[Answer], Server]) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.headers.replace_header("Range", "bytes=0-")
        blob_answer()(h)

    got, stop = fetch(Location(f"{serve(answer).url}/b"), 1000)
    assert got == b"" and stop is not None


def test_redirects_keep_authorization_only_on_their_origin(
        serve: Callable[[Answer], Server]) -> None:
    storage = serve(blob_answer())

    def to(url: str) -> Answer:
        def answer(h: BaseHTTPRequestHandler) -> None:
            h.send_response(307)
            h.send_header("Location", url)
            h.send_header("Content-Length", "0")
            h.end_headers()
        return answer

    registry = serve(lambda h: None)
    registry.answer = lambda h: (to(f"{storage.url}/s?sig=1") if h.path == "/moved"
                                 else to("/moved"))(h)
    got, stop = fetch(Location(f"{registry.url}/b", {"Authorization": "Bearer t"}))
    assert (got, stop) == (BLOB, None)
    assert [s["path"] for s in registry.seen] == ["/b", "/moved"]
    assert all(s["Authorization"] == "Bearer t" for s in registry.seen)
    assert storage.seen[0]["path"] == "/s?sig=1"
    assert "Authorization" not in storage.seen[0]


def test_a_redirect_loop_is_handed_over(serve: Callable[[Answer], Server]) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(307)
        h.send_header("Location", h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()

    server = serve(answer)
    got, stop = fetch(Location(f"{server.url}/b"))
    assert got == b"" and stop is not None and "redirects" in str(stop)
    assert len(server.seen) == direct.MAX_REDIRECTS + 1


def test_a_slow_start_hands_the_rest_over_after_the_probe(
        serve: Callable[[Answer], Server]) -> None:
    # A registry far away (the registry service's probe): its parallel ranges do better.
    server = serve(blob_answer())
    got, stop = fetch(Location(f"{server.url}/b", probe_bytes=direct.CHUNK,
                               min_bytes_per_second=1e15))
    assert got == BLOB[:direct.CHUNK]
    assert stop is not None and "slow start" in str(stop)


def test_a_dropped_connection_keeps_what_came(serve: Callable[[Answer], Server]) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(BLOB)))
        h.end_headers()
        h.wfile.write(BLOB[: direct.CHUNK + 100])
        h.close_connection = True

    got, stop = fetch(Location(f"{serve(answer).url}/b"))
    assert stop is not None
    assert BLOB.startswith(got) and len(got) >= direct.CHUNK


def test_a_trickle_is_handed_over(serve: Callable[[Answer], Server],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A byte now and then keeps a socket read from timing out; the chunk's deadline ends it.
    monkeypatch.setattr(direct, "CHUNK_DEADLINE", 0.3)
    stopping = threading.Event()
    server = serve(blob_answer(piece=1, pause=0.02, stopping=stopping))
    try:
        got, stop = fetch(Location(f"{server.url}/b"))
    finally:
        stopping.set()
    assert stop is not None and BLOB.startswith(got) and len(got) < 1000


def test_cancel_wakes_a_waiting_read(serve: Callable[[Answer], Server]) -> None:
    waiting, stopping = threading.Event(), threading.Event()

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(BLOB)))
        h.end_headers()
        h.wfile.write(BLOB[:1000])
        h.wfile.flush()
        waiting.set()
        stopping.wait(30)

    server = serve(answer)
    cancel = Cancel()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fetch(Location(f"{server.url}/b"), cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert waiting.wait(10)
        cancel.set()
        thread.join(10)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    finally:
        stopping.set()


def test_an_answer_whose_head_never_ends_is_handed_over(
        serve: Callable[[Answer], Server], monkeypatch: pytest.MonkeyPatch) -> None:
    # "100 Continue" for ever: http.client reads past any number of them, each in time
    # for the socket timeout; the deadline on the answer's head ends it.
    monkeypatch.setattr(direct, "OPEN_DEADLINE", 0.3)
    stopping = threading.Event()

    def answer(h: BaseHTTPRequestHandler) -> None:
        while not stopping.wait(0.01):
            h.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            h.wfile.flush()

    server = serve(answer)
    try:
        got, stop = fetch(Location(f"{server.url}/b"))
    finally:
        stopping.set()
    assert got == b"" and stop is not None


def test_cancel_wakes_a_wait_for_the_answer(serve: Callable[[Answer], Server]) -> None:
    waiting, stopping = threading.Event(), threading.Event()

    def answer(h: BaseHTTPRequestHandler) -> None:
        waiting.set()
        stopping.wait(30)  # no answer at all

    server = serve(answer)
    cancel = Cancel()
    def cancel_once_waiting() -> None:
        waiting.wait(10)
        cancel.set()

    threading.Thread(target=cancel_once_waiting, daemon=True).start()
    began = time.monotonic()
    try:
        with pytest.raises(Cancelled):
            fetch(Location(f"{server.url}/b"), cancel=cancel)
    finally:
        stopping.set()
    assert time.monotonic() - began < direct.OPEN_DEADLINE  # woken, not timed out


@pytest.mark.parametrize("location", ["http://127.0.0.1:99999x/", "http://[::1", "ftp://h/b"])
def test_a_redirect_nowhere_is_handed_over(serve: Callable[[Answer], Server],
                                           location: str) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(307)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    got, stop = fetch(Location(f"{serve(answer).url}/b"))
    assert got == b"" and stop is not None


def test_a_coded_answer_is_handed_over(serve: Callable[[Answer], Server]) -> None:
    # Blobs are hashed as stored: a content coding http.client would not undo.
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(BLOB)))
        h.send_header("Content-Encoding", "gzip")
        h.end_headers()
        h.wfile.write(BLOB)

    got, stop = fetch(Location(f"{serve(answer).url}/b"))
    assert got == b"" and stop is not None and "gzip" in str(stop)


def test_a_consumer_that_stops_early_closes_the_connection(
        serve: Callable[[Answer], Server]) -> None:
    gone = threading.Event()
    big = BLOB * 8  # more than the socket buffers hold
    server = serve(lambda h: _serve_big(h, big, gone))
    chunks = direct.download(Location(f"{server.url}/b"), 0, len(big))
    next(chunks)
    chunks.close()
    assert gone.wait(10), "the server kept writing to a download that was closed"


def _serve_big(h: BaseHTTPRequestHandler, data: bytes, gone: threading.Event) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    try:
        for at in range(0, len(data), 65536):
            h.wfile.write(data[at:at + 65536])
    except (BrokenPipeError, ConnectionResetError):
        gone.set()


def test_over_tls_a_trickle_hands_over_only_plaintext(
        serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # The watchdog shuts a TLS connection mid-read: what was read must be the blob's
    # bytes, never the TLS records still queued (SSLSocket.shutdown would expose them).
    ca = make_ca(tmp_path / "ca")
    cert, key = issue(tmp_path / "server", ca, "registry")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(ca[0]))
    monkeypatch.setattr(direct, "_tls_context", lambda: client_tls)
    monkeypatch.setattr(direct, "CHUNK_DEADLINE", 0.3)
    stopping = threading.Event()
    server = serve(blob_answer(piece=4096, pause=0.01, stopping=stopping), server_tls)
    try:
        got, stop = fetch(Location(f"{server.url}/b", {"Authorization": "Bearer t"}))
    finally:
        stopping.set()
    assert stop is not None
    assert BLOB.startswith(got)
    assert server.seen[0]["Authorization"] == "Bearer t"
