"""HTTP/1.1 of the Docker API: h11 on asyncio streams.

Why h11 rather than aiohttp: the Docker API needs the connection itself, not only
requests. attach and exec start hijack it (``101 UPGRADED``, then raw bytes both ways),
and the client half-closes its write side while output keeps flowing (COMPAT.md §3).
asyncio's stream protocol keeps the transport open on a peer's EOF; h11 is a sans-I/O
parser that hands the socket back after a 101 (``trailing_data``). aiohttp would need its
private protocol internals for both. h11 is well kept (python-hyper) and already in the
venv as httpx's HTTP/1.1 engine.

One ``Connection`` per client socket: requests are read one after another (keep-alive),
each answered through a ``Responder``: a whole body, a chunked stream flushed per write,
or a hijack.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from services.core.logging import get_logger
from services.dockerapi.errors import ApiError, from_muelle
from vocab.errors import MuelleError

MAX_BODY = 8 * 1024 * 1024  # every body a client sends today is a JSON document
READ_SIZE = 65536
DISCARD_LIMIT = 256 * 1024 * 1024  # of a refused body, read and dropped before closing
DISCARD_TIMEOUT = 5.0
# Requests whose body is not buffered but read by the handler (``Request.body_stream``,
# services/dockerapi/uploads.py): tars that may be any size and are passed on as they
# arrive: a build context, an image archive (docker load), a root filesystem (docker import:
# ``images/create`` with ``fromSrc``), a tar for docker cp into a container.
_STREAMED = (("POST", re.compile(r"^(/v\d+\.\d+)?/(build|images/load)$")),
             ("POST", re.compile(r"^(/v\d+\.\d+)?/images/create$")),
             ("PUT", re.compile(r"^(/v\d+\.\d+)?/containers/[^/]+/archive$")))


def streamed_body(method: str, path: str, query: str) -> bool:
    """Whether the handler reads this request's body as a stream (see _STREAMED)."""
    for verb, pattern in _STREAMED:
        if method == verb and pattern.match(path):
            return "images/create" not in path or "fromSrc=" in query
    return False
API_VERSION = "1.41"
SERVER = "muelle (linux)"
# On every response, as dockerd does (COMPAT.md "Version negotiation").
COMMON_HEADERS = [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
                  ("Ostype", "linux"), ("Server", SERVER)]


@dataclass
class Request:
    method: str
    path: str  # decoded, without the /v1.N prefix
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    api_version: str = API_VERSION
    params: dict[str, str] = field(default_factory=dict)  # from the route
    body_stream: BodyStream | None = None  # for streamed_body() requests, instead of ``body``

    @property
    def upgrade(self) -> bool:
        """The client asked to take the connection over (attach, exec start)."""
        return "upgrade" in self.headers.get("connection", "").lower()

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter: the CLI sends 1/0, docker-py True/False."""
        value = self.arg(name)
        if value == "":
            return default
        return value.lower() not in ("0", "false", "no")

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, f"invalid value for {name}: {value!r}") from None

    def json(self, default: Any = None) -> Any:
        if not self.body.strip():
            return default
        try:
            doc = json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, f"invalid JSON in the request body: {exc}") from None
        if b"\\u" in self.body:  # only an escape can make a lone surrogate,
            try:  # which no UTF-8 string (protobuf's, Go's) can carry
                json.dumps(doc, ensure_ascii=False).encode()
            except UnicodeEncodeError:
                raise ApiError(400, "invalid JSON in the request body: a string holds an "
                                    "unpaired UTF-16 surrogate") from None
        return doc


class BodyStream:
    """A request body read as it arrives (h11 de-chunks it); b"" at its end."""

    def __init__(self, conn: h11.Connection, reader: asyncio.StreamReader) -> None:
        self._conn = conn
        self._reader = reader
        self.done = False

    async def read(self) -> bytes:
        while not self.done:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self._reader.read(READ_SIZE)
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    raise ConnectionResetError("the client went away while sending the body")
                self._conn.receive_data(data)
            elif isinstance(event, h11.Data):
                return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.done = True
            else:
                raise ApiError(400, f"malformed request body: {event!r}")
        return b""

    async def discard(self) -> None:
        """Read the rest of the body and drop it: at most DISCARD_LIMIT bytes, each read
        within DISCARD_TIMEOUT."""
        left = DISCARD_LIMIT
        try:
            while left > 0 and (data := await asyncio.wait_for(self.read(),
                                                               DISCARD_TIMEOUT)):
                left -= len(data)
        except (TimeoutError, ConnectionError, OSError, ApiError):
            return


class Hijacked:
    """The raw connection after a 101: ``reader`` (leftover bytes first) and ``writer``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 leftover: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.leftover = leftover

    async def read(self) -> bytes:
        """Next bytes from the client; b"" once it half-closed (or went away)."""
        if self.leftover:
            data, self.leftover = self.leftover, b""
            return data
        try:
            return await self.reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class Responder:
    """How a handler answers; exactly one of json/empty/stream/hijack per request."""

    def __init__(self, conn: h11.Connection, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self._conn = conn
        self._reader = reader
        self._writer = writer
        self.started = False
        self.finished = False
        self.hijacked = False
        self.head_request = False  # set once the request is read

    async def _send(self, *events: Any) -> None:
        for event in events:
            data = self._conn.send(event)
            if data:
                self._writer.write(data)
        await self._writer.drain()

    def _head(self, status: int, headers: list[tuple[str, str]]) -> h11.Response:
        self.started = True
        return h11.Response(status_code=status, headers=[*COMMON_HEADERS, *headers])

    async def body(self, status: int, data: bytes, content_type: str = "application/json",
                   headers: list[tuple[str, str]] | None = None) -> None:
        hdrs = [("Content-Type", content_type), ("Content-Length", str(len(data))),
                *(headers or [])]
        # The answer to a HEAD (an error of HEAD /containers/{id}/archive) has the head
        # only: h11 refuses the body, which dropped the connection the CLI reuses next.
        body = [] if self.head_request else [h11.Data(data=data)]
        await self._send(self._head(status, hdrs), *body, h11.EndOfMessage())
        self.finished = True

    async def json(self, status: int, obj: Any) -> None:
        await self.body(status, json.dumps(obj).encode() + b"\n")

    async def empty(self, status: int = 204) -> None:
        # 204 and 304 carry no framing headers at all.
        hdrs = [] if status in (204, 304) else [("Content-Length", "0")]
        await self._send(self._head(status, hdrs), h11.EndOfMessage())
        self.finished = True

    async def start_stream(self, status: int = 200, content_type: str = "",
                           headers: list[tuple[str, str]] | None = None) -> None:
        """The head now, flushed (a waiting client may act on it: COMPAT.md §2); the body
        as chunks from ``write``."""
        hdrs = [("Transfer-Encoding", "chunked"), *(headers or [])]
        if content_type:
            hdrs.append(("Content-Type", content_type))
        await self._send(self._head(status, hdrs))

    async def write(self, data: bytes) -> None:
        if data:
            await self._send(h11.Data(data=data))

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())
        self.finished = True

    async def hijack(self, upgrade: bool) -> Hijacked:
        """Take the connection over: ``101 UPGRADED`` when the client asked for an
        upgrade, else ``200`` followed by raw bytes (clients before API 1.24 did that)."""
        self.started = self.hijacked = True
        content_type = ("Content-Type", "application/vnd.docker.raw-stream")
        leftover = b""
        # h11 exports its states without __all__ listing them (mypy --strict)
        if upgrade and self._conn.their_state is h11.MIGHT_SWITCH_PROTOCOL:  # type: ignore[attr-defined]
            await self._send(h11.InformationalResponse(
                status_code=101, reason=b"UPGRADED",
                headers=[*COMMON_HEADERS, content_type, ("Connection", "Upgrade"),
                         ("Upgrade", "tcp")]))
            leftover = self._conn.trailing_data[0]
        else:
            head = ["HTTP/1.1 200 OK", *(f"{k}: {v}" for k, v in COMMON_HEADERS),
                    f"{content_type[0]}: {content_type[1]}", "", ""]
            self._writer.write("\r\n".join(head).encode())
            await self._writer.drain()
        return Hijacked(self._reader, self._writer, leftover)

    async def client_gone(self) -> None:
        """Returns once the client closed its side (for long polls such as wait, which
        write nothing until they answer: the CLI hangs up a run -d's wait after start)."""
        while True:
            try:
                data = await self._reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                return
            if not data:
                return
            # A pipelining client: h11 sees these bytes as the next request.
            self._conn.receive_data(data)


Handler = Callable[[Request, Responder], Awaitable[None]]


async def _next_request(conn: h11.Connection, reader: asyncio.StreamReader
                        ) -> tuple[h11.Request, bytes | None] | None:
    """The next request and its body; None for a body the handler reads as a stream."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                return None
            conn.receive_data(data)
            continue
        if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            head = event
            target = urlsplit(event.target.decode("latin-1"))
            if streamed_body(event.method.decode("latin-1"), unquote(target.path),
                             target.query):
                return head, None
            length = dict(event.headers).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY:
                raise ApiError(413, f"request body too large (more than {MAX_BODY} bytes)")
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise ApiError(413, f"request body too large (more than {MAX_BODY} bytes)")
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return head, bytes(body)


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read what the client still sends (bounded), so that it sees the error answer
    rather than a reset while it writes a body we refused."""
    left = DISCARD_LIMIT
    try:
        while left > 0:
            data = await asyncio.wait_for(reader.read(READ_SIZE), DISCARD_TIMEOUT)
            if not data:
                return
            left -= len(data)
    except (TimeoutError, ConnectionError, OSError):
        return


def _request(head: h11.Request, body: bytes) -> Request:
    target = head.target.decode("latin-1")
    parts = urlsplit(target)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
    return Request(method=head.method.decode(), path=unquote(parts.path),
                   query=parse_qs(parts.query, keep_blank_values=True), headers=headers,
                   body=body)


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           handler: Handler) -> None:
    """Answer requests on one connection until it closes or is hijacked."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=READ_SIZE)
    log = get_logger(component="dockerapi")
    try:
        while True:
            out = Responder(conn, reader, writer)
            try:
                got = await _next_request(conn, reader)
            except ApiError as exc:  # too large: answer, then drop the connection
                await out.json(exc.status, {"message": exc.message})
                await _discard(reader)
                return
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await out.json(400, {"message": f"malformed HTTP request: {exc}"})
                return
            if got is None:
                return
            head, body = got
            req = _request(head, body or b"")
            if body is None:
                req.body_stream = BodyStream(conn, reader)
            out.head_request = req.method == "HEAD"
            log.debug("request", method=req.method, path=req.path)
            try:
                await handler(req, out)
            except (ConnectionError, asyncio.IncompleteReadError):
                return  # the client went away mid-answer
            except Exception as exc:  # noqa: BLE001 - the edge: never a traceback to clients
                err = exc if isinstance(exc, ApiError) else (
                    from_muelle(exc) if isinstance(exc, MuelleError) else None)
                if err is None:
                    log.exception("unexpected error", method=req.method, path=req.path)
                    err = ApiError(500, f"internal error: {type(exc).__name__}: {exc}")
                if out.started:
                    return  # mid-stream: the only signal left is closing the connection
                if err.status in (204, 304):
                    await out.empty(err.status)
                else:
                    await out.json(err.status, {"message": err.message})
            if out.hijacked:
                return
            if not out.started:
                await out.empty(204)
            elif not out.finished:
                await out.end()
            if req.body_stream is not None and not req.body_stream.done:
                # Answered before the body ended (refused early): read the rest, bounded,
                # so the client sees the answer rather than a reset while it still writes.
                await req.body_stream.discard()
                return
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (ConnectionError, OSError, h11.LocalProtocolError):
        return
    except Exception:  # noqa: BLE001 - a bug here must cost one connection, not the server
        log.exception("connection failed")
    finally:
        writer.close()
