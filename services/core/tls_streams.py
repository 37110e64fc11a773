"""A TLS server for asyncio whose connections survive the client's TCP half-close.

asyncio's own TLS transport (``start_server(ssl=...)``) closes the whole connection when
the peer shuts down its sending side of TCP without a TLS close_notify. The docker CLI
and Go's Docker client do exactly that on a hijacked connection (``docker run`` without
``-i`` sends no stdin: it calls CloseWrite on the raw TCP connection, as dockerd expects),
and then wait for the container's output on the other half: over asyncio's TLS they got
nothing (``docker run`` printed nothing and exited 0).

Here each connection's TLS runs in memory (``ssl.SSLObject`` over two ``MemoryBIO``s,
public API only) between the TCP stream and one end of a socketpair; the handler gets
ordinary streams on the other end. A TCP half-close from the client becomes a half-close
of the socketpair (the handler reads EOF and may still write, as on a unix socket); when
the handler closes, close_notify is sent and the TCP connection closed. The handshake is
done, with the certificate checks, before the handler runs; it gets the verified peer
certificate (``getpeercert()``) as its third argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

READ_SIZE = 64 * 1024
# As asyncio's default ssl_handshake_timeout: a peer that connects and never completes
# a handshake holds nothing longer than this.
HANDSHAKE_TIMEOUT = 60.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any] | None],
                   Awaitable[None]]


class _Tls:
    """One connection's TLS state machine, in memory."""

    def __init__(self, context: ssl.SSLContext, raw_reader: asyncio.StreamReader,
                 raw_writer: asyncio.StreamWriter) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.raw_reader = raw_reader
        self.raw_writer = raw_writer

    async def flush(self) -> None:
        """Send what OpenSSL produced (handshake messages, records, alerts)."""
        data = self.outgoing.read()
        if data:
            self.raw_writer.write(data)
            await self.raw_writer.drain()

    async def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self.flush()
                data = await self.raw_reader.read(READ_SIZE)
                if not data:
                    raise ConnectionResetError("peer closed during the TLS handshake") \
                        from None
                self.incoming.write(data)
            except ssl.SSLError:
                # The alert (e.g. bad certificate) tells the client why.
                with contextlib.suppress(ConnectionError, OSError):
                    await self.flush()
                raise
        await self.flush()

    def _decrypted(self) -> tuple[bytes, bool]:
        """What OpenSSL can decrypt from what arrived so far, and whether the client
        ended its TLS stream (close_notify)."""
        out = bytearray()
        while True:
            try:
                chunk = self.obj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                return bytes(out), False
            except ssl.SSLZeroReturnError:
                return bytes(out), True
            if not chunk:
                return bytes(out), True
            out += chunk

    async def up(self, app_writer: asyncio.StreamWriter) -> None:
        """The client's bytes, decrypted, to the handler; its EOF as a half-close. What
        arrived with the handshake's last flight is in the BIO already: read first."""
        try:
            while True:
                data, ended = self._decrypted()
                if data:
                    app_writer.write(data)
                    await app_writer.drain()
                await self.flush()  # TLS 1.3 post-handshake messages, key updates
                if ended:
                    break
                raw = await self.raw_reader.read(READ_SIZE)
                if not raw:
                    break
                self.incoming.write(raw)
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        with contextlib.suppress(ConnectionError, OSError):
            if app_writer.can_write_eof():
                app_writer.write_eof()

    async def down(self, app_reader: asyncio.StreamReader) -> None:
        """The handler's bytes, encrypted, to the client; its close as close_notify."""
        try:
            while True:
                data = await app_reader.read(READ_SIZE)
                if not data:
                    break
                self.obj.write(data)
                await self.flush()
            with contextlib.suppress(ssl.SSLError):
                self.obj.unwrap()  # queues close_notify (the peer's answer is not awaited)
            await self.flush()
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        finally:
            self.raw_writer.close()


async def start_server(handler: Handler, host: str, port: int,
                       context: ssl.SSLContext) -> asyncio.Server:
    """Listen on ``host``:``port``; each connection that completes the TLS handshake is
    handed to ``handler(reader, writer, peercert)``."""

    async def on_raw(raw_reader: asyncio.StreamReader,
                     raw_writer: asyncio.StreamWriter) -> None:
        tls = _Tls(context, raw_reader, raw_writer)
        try:
            await asyncio.wait_for(tls.handshake(), HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, TimeoutError, ConnectionError, OSError):
            raw_writer.close()
            return
        peercert = tls.obj.getpeercert()
        ours, theirs = socket.socketpair()
        app_reader, app_writer = await asyncio.open_connection(sock=ours)
        pipe_reader, pipe_writer = await asyncio.open_connection(sock=theirs)
        pumps = [asyncio.ensure_future(tls.up(pipe_writer)),
                 asyncio.ensure_future(tls.down(pipe_reader))]
        try:
            await handler(app_reader, app_writer, peercert or None)
        finally:
            app_writer.close()
            # down() ends when it reads the handler's close; up() when the client goes
            # (down closed the TCP connection) or the handler's end of the pipe closed.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pumps[1], HANDSHAKE_TIMEOUT)
            pipe_writer.close()
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    return await asyncio.start_server(on_raw, host, port)
