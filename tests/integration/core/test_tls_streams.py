"""The Docker API's TLS listener (services/core/tls_streams.py) with real TLS clients.

The client half-closes TCP after its request, without a close_notify, as the docker CLI
does on a hijacked connection (Go's CloseWrite on the raw connection); the server must
still be able to answer on the other half. asyncio's own TLS server closed the whole
connection there.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.core import tls_streams
from services.core.tls import server_ssl_context
from tests.support.pki import Pki
from vocab.channel import TlsFiles


class Server:
    """tls_streams' server on a loopback port, in a thread with its own loop. Each
    connection: read to EOF, then answer what was read and the peer's CN."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.context = context
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> asyncio.Server:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          peercert: dict[str, Any] | None) -> None:
            data = await reader.read()  # to EOF: the client's half-close
            await asyncio.sleep(0.05)  # answer well after it
            cn = dict(x[0] for x in (peercert or {}).get("subject", ()))["commonName"]
            writer.write(b"got " + data + b" from " + cn.encode())
            await writer.drain()
            writer.close()

        server = await tls_streams.start_server(handler, "127.0.0.1", 0, self.context)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            # Connections whose client left without reading the answer: end them here.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def server_files(pki: Pki) -> TlsFiles:
    return pki.issue("dockerapi-x", ips=["127.0.0.1"])


@pytest.fixture
def server(server_files: TlsFiles) -> Iterator[Server]:
    srv = Server(server_ssl_context(server_files))
    yield srv
    srv.close()


def _client(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=files.ca)
    ctx.load_cert_chain(files.cert, files.key)
    return ctx


def _half_closing_request(port: int, files: TlsFiles) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with _client(files).wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(b"hello")
        # Go's tlsClientCon.CloseWrite: the raw socket's write side, no close_notify.
        with socket.socket(fileno=os.dup(conn.fileno())) as same:
            same.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := conn.recv(1024):
            out += chunk
        return out


def test_the_answer_arrives_after_the_clients_tcp_half_close(server: Server,
                                                              pki: Pki) -> None:
    assert _half_closing_request(server.port, pki.issue("client-a", ips=[])) == \
        b"got hello from client-a"


def test_a_certificate_of_another_ca_fails_the_handshake(server: Server, pki: Pki,
                                                        tmp_path: Path) -> None:
    other = Pki(tmp_path, "other").issue("client-a", ips=[])
    with pytest.raises(OSError):  # an alert, a reset or a closed socket: refused
        _half_closing_request(server.port, TlsFiles(pki.issue("x", ips=[]).ca, other.cert,
                                                    other.key))
    # The server still serves others.
    assert _half_closing_request(server.port, pki.issue("client-b", ips=[])) == \
        b"got hello from client-b"


def test_a_renewed_certificate_is_presented_from_the_next_handshake(
        server: Server, server_files: TlsFiles, pki: Pki) -> None:
    """server_ssl_context swaps in renewed files from OpenSSL's servername callback,
    which runs for these in-memory connections as for asyncio's own."""
    from clients.certs import authority

    def presented() -> bytes:
        client = pki.issue("client-r", ips=[])
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with _client(client).wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            der = conn.getpeercert(binary_form=True)
            assert der is not None
            return der

    before = presented()
    authority.renew(pki.ca_dir, Path(server_files.cert).parent)
    after = presented()
    assert after != before
    assert after == ssl.PEM_cert_to_DER_cert(Path(server_files.cert).read_text())
