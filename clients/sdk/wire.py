"""A minimal gRPC client over HTTP/2 on a plain socket, for short-lived processes.

The CLI runs for a fraction of a second per command; grpcio costs it ~90 ms to import and
~40 ms more to shut down, which is more than ``docker run --rm`` takes end to end. This
module speaks the same wire protocol (gRPC's PROTOCOL-HTTP2: HTTP/2 frames, HPACK headers,
length-prefixed protobuf messages, status in trailers) with the stdlib only, for unary and
server-streaming calls over a unix socket or plain TCP. It is not a general HTTP/2 client:
requests must fit the peer's initial flow-control window (the SDK falls back to grpcio for
larger requests, client streams and TLS); responses may be of any size.

Every call is a stream on one connection; frames of other streams read meanwhile are kept
for them, so a stream may stay open while other calls are made.
"""

from __future__ import annotations

import _socket
import _thread
import struct

from vocab.errors import MuelleError, Unavailable, from_status

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Iterator
    from typing import Any, BinaryIO
else:
    # deque without the collections package (~3 ms of every CLI start); the same class
    from _collections import deque

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
MAX_WINDOW = (1 << 31) - 1
DEFAULT_WINDOW = 65535
MAX_FRAME = 16384  # the peer's SETTINGS_MAX_FRAME_SIZE until it says otherwise
REFILL = 1 << 30  # give window back once this much was consumed
CANCEL = 0x8

# RFC 7541 Appendix A: the HPACK static table (index 1..61).
STATIC = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
]


MAX_REQUEST = DEFAULT_WINDOW - 5  # a request message that fits the initial window


def supports(address: str) -> bool:
    """Whether wire can reach ``address``: unix sockets and plain TCP."""
    return address.startswith(("unix:", "tcp://")) or (
        "://" not in address and address.rpartition(":")[2].isdigit())


def percent_decode(text: str) -> str:
    """grpc-message is percent-encoded UTF-8 (urllib.parse would cost an import)."""
    if "%" not in text:
        return text
    raw = bytearray()
    i = 0
    data = text.encode()
    while i < len(data):
        if data[i] == 0x25 and i + 3 <= len(data):  # "%XX"
            try:
                raw.append(int(data[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        raw.append(data[i])
        i += 1
    return raw.decode("utf-8", errors="replace")


class ProtocolError(Exception):
    """The peer broke HTTP/2 or gRPC framing."""


# ---------------------------------------------------------------------------- HPACK


def _encode_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_str(text: str) -> bytes:
    raw = text.encode()
    return _encode_int(len(raw), 7, 0) + raw  # no Huffman: plain octets are allowed


def encode_headers(headers: list[tuple[str, str]]) -> bytes:
    """Literal header fields without indexing (names from the static table when there)."""
    names = {name: i + 1 for i, (name, _v) in reversed(list(enumerate(STATIC)))}
    out = bytearray()
    for name, value in headers:
        if (name, value) in STATIC:
            out += _encode_int(STATIC.index((name, value)) + 1, 7, 0x80)
        elif name in names:
            out += _encode_int(names[name], 4, 0x00) + _encode_str(value)
        else:
            out += b"\x00" + _encode_str(name) + _encode_str(value)
    return bytes(out)


class Decoder:
    """HPACK decoding with the dynamic table (RFC 7541 §2.3, §6)."""

    def __init__(self, max_size: int = 4096) -> None:
        self.table: deque[tuple[str, str]] = deque()
        self.size = 0
        self.max_size = max_size

    def _int(self, data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
        limit = (1 << prefix_bits) - 1
        value = data[pos] & limit
        pos += 1
        if value < limit:
            return value, pos
        shift = 0
        while True:
            if pos >= len(data):
                raise ProtocolError("truncated HPACK integer")
            byte = data[pos]
            pos += 1
            value += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, pos

    def _str(self, data: bytes, pos: int) -> tuple[str, int]:
        huffman = bool(data[pos] & 0x80)
        length, pos = self._int(data, pos, 7)
        raw = data[pos:pos + length]
        if len(raw) != length:
            raise ProtocolError("truncated HPACK string")
        if huffman:
            # grpc-core sends plain strings; Huffman is decoded by the hpack package,
            # imported only if a peer uses it.
            from hpack.huffman_table import decode_huffman

            raw = decode_huffman(raw)
        return raw.decode("utf-8", errors="replace"), pos + length

    def _entry(self, index: int) -> tuple[str, str]:
        if 1 <= index <= len(STATIC):
            return STATIC[index - 1]
        dyn = index - len(STATIC) - 1
        if 0 <= dyn < len(self.table):
            return self.table[dyn]
        raise ProtocolError(f"HPACK index {index} out of range")

    def _add(self, name: str, value: str) -> None:
        self.table.appendleft((name, value))
        self.size += len(name) + len(value) + 32
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size and self.table:
            name, value = self.table.pop()
            self.size -= len(name) + len(value) + 32

    def decode(self, data: bytes) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pos = 0
        while pos < len(data):
            byte = data[pos]
            if byte & 0x80:  # indexed field
                index, pos = self._int(data, pos, 7)
                out.append(self._entry(index))
                continue
            if byte & 0xE0 == 0x20:  # dynamic table size update
                self.max_size, pos = self._int(data, pos, 5)
                self._evict()
                continue
            indexing = bool(byte & 0x40)
            index, pos = self._int(data, pos, 6 if indexing else 4)
            if index:
                name = self._entry(index)[0]
            else:
                name, pos = self._str(data, pos)
            value, pos = self._str(data, pos)
            if indexing:
                self._add(name, value)
            out.append((name, value))
        return out


# ---------------------------------------------------------------------------- streams


class _Stream:
    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.messages: deque[bytes] = deque()
        self.buffer = bytearray()
        self.headers: list[tuple[str, str]] | None = None
        self.trailers: list[tuple[str, str]] | None = None
        self.reset: int | None = None
        self.done = False
        self.window = DEFAULT_WINDOW  # what we may still send on it (send-side flow control)


class Channel:
    """One HTTP/2 connection to a gRPC server; calls are streams on it."""

    def __init__(self, address: str, connect_timeout: float = 5.0,
                 tls: tuple[str, str, str] | None = None) -> None:
        """``tls``: (ca, cert, key) PEM files for mutual TLS to a TCP address."""
        self.address = address
        self.connect_timeout = connect_timeout
        self.tls = tls
        self._heard = False  # the server answered a call (HEADERS) on this connection
        self._sock: _socket.socket | None = None
        self._rfile: BinaryIO | None = None
        self._next_sid = 1
        self._streams: dict[int, _Stream] = {}
        self._decoder = Decoder()
        self._header_block = bytearray()
        self._header_sid = 0
        self._header_end = False
        self._consumed = 0
        self._lock = _thread.RLock()
        self._goaway: int | None = None
        self._max_frame = MAX_FRAME
        self._send_window = DEFAULT_WINDOW  # the connection's, for uploads
        self._initial_window = DEFAULT_WINDOW  # the peer's SETTINGS_INITIAL_WINDOW_SIZE

    # ------------------------------------------------------------ connection

    def _connect(self) -> _socket.socket:
        if self._sock is not None:
            return self._sock
        addr = self.address
        try:
            if addr.startswith("unix://") or addr.startswith("unix:"):
                path = addr[len("unix://"):] if addr.startswith("unix://") else addr[5:]
                # _socket, not socket: the module's enum conversions cost the CLI ~5 ms
                sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                sock.settimeout(self.connect_timeout)
                sock.connect(path)
            else:
                import socket

                hostport = addr[len("tcp://"):] if addr.startswith("tcp://") else addr
                host, _, port = hostport.rpartition(":")
                sock = socket.create_connection((host.strip("[]"), int(port)),
                                                timeout=self.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is not None:
                    sock = self._wrap_tls(sock, host.strip("[]"))
        except (OSError, ValueError) as exc:
            raise Unavailable(f"cannot connect to {addr}: {exc}") from None
        sock.settimeout(None)
        settings = struct.pack(">HI", 0x2, 0) + struct.pack(">HI", 0x4, MAX_WINDOW)
        sock.sendall(PREFACE + self._frame(SETTINGS, 0, 0, settings)
                     + self._frame(WINDOW_UPDATE, 0, 0,
                                   struct.pack(">I", MAX_WINDOW - DEFAULT_WINDOW)))
        self._sock = sock
        if self.tls is not None:  # reads decrypt through the SSL socket
            self._rfile = sock.makefile("rb")  # type: ignore[attr-defined]
        else:  # buffered reads straight from the fd (makefile() needs socket.socket)
            self._rfile = open(sock.fileno(), "rb", closefd=False)  # noqa: SIM115
        return sock

    def _wrap_tls(self, sock: Any, host: str) -> Any:
        """Mutual TLS as gRPC servers speak it: our certificate, the CA the server's must
        be signed by (checked against ``host``, a name or IP SAN), HTTP/2 by ALPN."""
        import ssl

        assert self.tls is not None
        ca, cert, key = self.tls
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["h2"])
        return ctx.wrap_socket(sock, server_hostname=host)

    def close(self) -> None:
        if self._sock is not None:
            if self._rfile is not None:
                self._rfile.close()
                self._rfile = None
            self._sock.close()
            self._sock = None

    @staticmethod
    def _frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
        n = len(payload)
        return bytes([n >> 16, (n >> 8) & 0xFF, n & 0xFF, kind, flags]) \
            + struct.pack(">I", sid) + payload

    def _recv_exact(self, n: int) -> bytes:
        assert self._rfile is not None
        try:
            data = self._rfile.read(n)
        except OSError as exc:
            raise self._lost(f"connection to {self.address} failed: {exc}") from None
        if len(data) != n:
            raise self._lost(f"connection to {self.address} closed")
        return data

    def _lost(self, message: str) -> Unavailable:
        # In TLS 1.3 a server that refuses our certificate says so after the handshake
        # (an alert, then EOF; grpc may have sent its SETTINGS first), before it answered
        # any call: name the likely reason.
        if self.tls is not None and not self._heard:
            return Unavailable(f"{self.address} closed the TLS connection before answering: "
                               f"it did not accept the client certificate {self.tls[1]} "
                               f"(signed by another CA, or expired?)")
        return Unavailable(message)

    # ------------------------------------------------------------ calls

    def open(self, path: str, request: bytes) -> int:
        """Send a request (headers + one message) on a new stream; its stream id."""
        body = b"\x00" + struct.pack(">I", len(request)) + request
        if len(body) > DEFAULT_WINDOW:  # open() sends without waiting for window
            raise ValueError("request larger than the initial flow-control window")
        with self._lock:
            sid, out = self._new_stream(path)
            for i in range(0, len(body), self._max_frame):
                chunk = body[i:i + self._max_frame]
                last = i + self._max_frame >= len(body)
                out += self._frame(DATA, END_STREAM if last else 0, sid, chunk)
            self._send(bytes(out))
            self._streams[sid].window -= len(body)
            self._send_window -= len(body)
        return sid

    def _new_stream(self, path: str) -> tuple[int, bytearray]:
        """A new stream's id and its HEADERS frame (not sent yet); under the lock."""
        if self._goaway is not None:  # the server is going away: a new connection
            self.close()
            self._goaway, self._next_sid, self._decoder = None, 1, Decoder()
            self._streams.clear()
            self._send_window = self._initial_window = DEFAULT_WINDOW
        self._connect()
        sid = self._next_sid
        self._next_sid += 2
        stream = _Stream(sid)
        stream.window = self._initial_window
        self._streams[sid] = stream
        block = encode_headers([
            (":method", "POST"), (":scheme", "https" if self.tls else "http"),
            (":path", path),
            (":authority", "localhost"), ("content-type", "application/grpc"),
            ("te", "trailers"), ("user-agent", "muelle-wire/1"),
        ])
        return sid, bytearray(self._frame(HEADERS, END_HEADERS, sid, block))

    def upload(self, path: str, requests: Iterator[bytes]) -> int:
        """A call with many request messages (a client stream, or a bidirectional one
        whose replies wait for the last request, as Build's): all of them are sent, as the
        peer's flow-control windows allow, then the stream's end; its stream id. Replies
        that arrive meanwhile are kept for next_message. A server that ends the call early
        (an error) stops the sending: next_message then raises its status."""
        with self._lock:
            sid, out = self._new_stream(path)
            self._send(bytes(out))
            stream = self._streams[sid]
            for request in requests:
                body = b"\x00" + struct.pack(">I", len(request)) + request
                if not self._send_data(stream, body, end=False):
                    return sid
            self._send_data(stream, b"", end=True)
        return sid

    def _send_data(self, stream: _Stream, body: bytes, end: bool) -> bool:
        """``body`` as DATA frames within the windows (reading frames, WINDOW_UPDATE
        among them, while they are shut); False if the stream ended meanwhile."""
        pos = 0
        while True:
            if stream.done:
                return False
            room = min(stream.window, self._send_window, self._max_frame)
            if room <= 0 and pos < len(body):
                self._read_frame()
                continue
            chunk = body[pos:pos + room]
            pos += len(chunk)
            last = pos >= len(body)
            if chunk or (last and end):
                self._send(self._frame(DATA, END_STREAM if last and end else 0,
                                       stream.sid, chunk))
                stream.window -= len(chunk)
                self._send_window -= len(chunk)
            if last:
                return True

    def next_message(self, sid: int) -> bytes | None:
        """The next response message of stream ``sid``; None at its end (status OK).
        Raises the call's typed error."""
        stream = self._streams[sid]
        while True:
            if stream.messages:
                return stream.messages.popleft()
            if stream.done:
                self._streams.pop(sid, None)
                self._finish(stream)
                return None
            with self._lock:
                if not stream.messages and not stream.done:
                    self._read_frame()

    def cancel(self, sid: int) -> None:
        stream = self._streams.pop(sid, None)
        if stream is None or stream.done or self._sock is None:
            return
        try:  # noqa: SIM105 - contextlib costs every CLI start ~4 ms to import
            self._sock.sendall(self._frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
        except OSError:
            pass

    def _finish(self, stream: _Stream) -> None:
        if stream.reset is not None:
            raise Unavailable(f"the server reset the call (HTTP/2 error {stream.reset})")
        fields = dict(stream.trailers or stream.headers or [])
        if "grpc-status" not in fields:
            status = (dict(stream.headers or [])).get(":status", "")
            raise Unavailable(f"no gRPC status in the response (HTTP status {status or '?'})")
        code = int(fields["grpc-status"])
        if code != 0:
            raise from_status(code, percent_decode(fields.get("grpc-message", "")))
        if stream.buffer:
            raise MuelleError("truncated gRPC message at the end of the stream")

    # ------------------------------------------------------------ frames

    def _read_frame(self) -> None:
        head = self._recv_exact(9)
        length = (head[0] << 16) | (head[1] << 8) | head[2]
        kind, flags = head[3], head[4]
        sid = struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
        payload = self._recv_exact(length) if length else b""
        if kind == DATA:
            self._on_data(sid, flags, payload)
        elif kind in (HEADERS, CONTINUATION):
            self._heard = True
            self._on_headers(kind, sid, flags, payload)
        elif kind == SETTINGS:
            if not flags & ACK:
                self._on_settings(payload)
        elif kind == PING:
            if not flags & ACK:
                self._send(self._frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            stream = self._streams.get(sid)
            if stream is not None:
                stream.reset = struct.unpack(">I", payload[:4])[0]
                stream.done = True
        elif kind == GOAWAY:
            last = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            for s in self._streams.values():
                if s.sid > last and not s.done:
                    s.reset = struct.unpack(">I", payload[4:8])[0]
                    s.done = True
            self._goaway = last
        elif kind == WINDOW_UPDATE:
            grant = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            if sid == 0:
                self._send_window += grant
            elif sid in self._streams:
                self._streams[sid].window += grant
        # Ignored: PRIORITY, PUSH_PROMISE (disabled by our SETTINGS) and unknown frame
        # types.

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise self._lost(f"connection to {self.address} failed: {exc}") from None

    def _on_settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            key, value = struct.unpack(">HI", payload[i:i + 6])
            if key == 0x5:
                self._max_frame = value
            elif key == 0x4:  # INITIAL_WINDOW_SIZE: open streams' windows move by the change
                for stream in self._streams.values():
                    stream.window += value - self._initial_window
                self._initial_window = value
        self._send(self._frame(SETTINGS, ACK, 0, b""))

    def _unpad(self, flags: int, payload: bytes) -> bytes:
        if flags & PADDED:
            pad = payload[0]
            payload = payload[1:len(payload) - pad]
        return payload

    def _on_data(self, sid: int, flags: int, payload: bytes) -> None:
        self._consumed += len(payload)
        if self._consumed >= REFILL:
            # Give the window back for long streams (logs -f, save).
            update = struct.pack(">I", self._consumed)
            self._send(self._frame(WINDOW_UPDATE, 0, 0, update)
                       + b"".join(self._frame(WINDOW_UPDATE, 0, s, update)
                                  for s in self._streams if not self._streams[s].done))
            self._consumed = 0
        stream = self._streams.get(sid)
        if stream is None:
            return
        stream.buffer += self._unpad(flags, payload)
        while len(stream.buffer) >= 5:
            compressed, size = stream.buffer[0], struct.unpack(">I", stream.buffer[1:5])[0]
            if len(stream.buffer) < 5 + size:
                break
            if compressed:
                raise ProtocolError("compressed gRPC message (none was asked for)")
            stream.messages.append(bytes(stream.buffer[5:5 + size]))
            del stream.buffer[:5 + size]
        if flags & END_STREAM:
            stream.done = True

    def _on_headers(self, kind: int, sid: int, flags: int, payload: bytes) -> None:
        if kind == HEADERS:
            payload = self._unpad(flags, payload)
            if flags & PRIORITY:
                payload = payload[5:]
            self._header_block = bytearray(payload)
            self._header_sid = sid
            self._header_end = bool(flags & END_STREAM)
        else:
            self._header_block += payload
        if not flags & END_HEADERS:
            return
        fields = self._decoder.decode(bytes(self._header_block))
        stream = self._streams.get(self._header_sid)
        if stream is None:
            return
        if stream.headers is None:
            stream.headers = fields
        else:
            stream.trailers = fields
        if self._header_end:
            stream.done = True


def call(channel: Channel, path: str, request: bytes) -> bytes:
    """A unary call: the one response message."""
    sid = channel.open(path, request)
    reply = channel.next_message(sid)
    if reply is None:
        raise MuelleError("the server sent no response message")
    while channel.next_message(sid) is not None:  # read to the trailers: the status
        pass
    return reply


def stream(channel: Channel, path: str, request: bytes) -> tuple[int, Iterator[bytes]]:
    """A server-streaming call: its stream id (to cancel) and its messages."""
    sid = channel.open(path, request)
    return sid, _replies(channel, sid)


def upload(channel: Channel, path: str, requests: Iterator[bytes]
           ) -> tuple[int, Iterator[bytes]]:
    """A call with a stream of requests, all sent first: its stream id and its replies."""
    sid = channel.upload(path, requests)
    return sid, _replies(channel, sid)


def _replies(channel: Channel, sid: int) -> Iterator[bytes]:
    while True:
        message = channel.next_message(sid)
        if message is None:
            return
        yield message
