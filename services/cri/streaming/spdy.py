"""SPDY/3.1 framing, server side: what Kubernetes' streaming (client-go's remotecommand
and portforward, over moby/spdystream) speaks after an HTTP upgrade.

Only what those clients use: SYN_STREAM from the client (a stream per stdin, stdout,
stderr, error, resize or port), SYN_REPLY to accept it, DATA both ways with FIN,
RST_STREAM, PING (echoed), GOAWAY; SETTINGS, HEADERS and WINDOW_UPDATE are read and
ignored (spdystream does no flow control). Header blocks are zlib streams primed with
SPDY/3's dictionary (spec section 2.6.10.1), one per direction per connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
RST_CANCEL = 5
MAX_FRAME = 1 << 24

_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status|200 OK|version HTTP/1.1 url public set-cookie "
    "keep-alive origin")
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502"
    "504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad "
    "Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not "
    "Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec "
    "00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,"
    "image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,public"
    "privatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    # "status|200 OK|version": the two words with a space inside.
    words = [w for part in _WORDS.split("|") for w in
             ([part] if part == "200 OK" else part.split())]
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + _TAIL.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3."""


def encode_headers(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    try:
        (count,), pos = struct.unpack_from(">I", block), 4
        out = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", block, pos)
            out[name] = block[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
        return out
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad header block: {exc}") from None


@dataclass
class Stream:
    """A stream the client opened; ``data`` yields what it sends until its FIN."""
    id: int
    headers: dict[str, str]
    conn: Connection
    _chunks: list[bytes | None] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def _push(self, chunk: bytes | None) -> None:
        with self._cond:
            self._chunks.append(chunk)
            self._cond.notify_all()

    def read(self, timeout: float | None = None) -> bytes | None:
        """The next chunk from the client; None at its FIN, a reset or the end of the
        connection."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._chunks, timeout):
                raise TimeoutError
            chunk = self._chunks.pop(0)
            if chunk is None:
                self._chunks.insert(0, None)  # stays at the end
            return chunk

    def write(self, data: bytes, fin: bool = False) -> None:
        self.conn.send_data(self.id, data, fin)

    def close(self) -> None:
        """Our half: FIN."""
        self.conn.send_data(self.id, b"", True)


class Connection:
    """One upgraded connection: a reader thread dispatches frames; writes are locked."""

    def __init__(self, sock: socket.socket, initial: bytes = b"") -> None:
        self.sock = sock
        self._buf = bytearray(initial)
        self._wlock = threading.Lock()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._streams: dict[int, Stream] = {}
        self._cond = threading.Condition()
        self._new: list[Stream] = []
        self.closed = False

    # -- reading
    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def serve(self) -> None:
        """Read frames until the connection ends (run in its own thread)."""
        try:
            while True:
                head = self._read_exact(8)
                flags, length = head[4], int.from_bytes(head[5:8], "big")
                payload = self._read_exact(length)
                if head[0] & 0x80:
                    self._control(int.from_bytes(head[2:4], "big"), flags, payload)
                else:
                    sid = int.from_bytes(head[0:4], "big") & 0x7FFFFFFF
                    stream = self._streams.get(sid)
                    if stream is not None:
                        if payload:
                            stream._push(payload)
                        if flags & FLAG_FIN:
                            stream._push(None)
        except (EOFError, OSError, ProtocolError, zlib.error):
            pass
        finally:
            self.closed = True
            for stream in list(self._streams.values()):
                stream._push(None)
            with self._cond:
                self._cond.notify_all()

    def _control(self, kind: int, flags: int, payload: bytes) -> None:
        if kind == SYN_STREAM:
            sid = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
            headers = decode_headers(self._inflate.decompress(payload[10:]))
            stream = Stream(sid, headers, self)
            self._streams[sid] = stream
            if flags & FLAG_FIN:
                stream._push(None)
            with self._cond:
                self._new.append(stream)
                self._cond.notify_all()
        elif kind == RST_STREAM:
            sid = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
            if sid in self._streams:
                self._streams[sid]._push(None)
        elif kind == PING:
            self._send_control(PING, 0, payload[:4])
        elif kind == GOAWAY:
            raise EOFError
        elif kind == HEADERS:
            self._inflate.decompress(payload[4:])  # keep the zlib stream in step
        # SETTINGS, WINDOW_UPDATE, SYN_REPLY: nothing to do

    def accept(self, timeout: float) -> Stream:
        """The next stream the client opens, already replied to."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._new or self.closed, timeout):
                raise TimeoutError
            if not self._new:
                raise EOFError
            stream = self._new.pop(0)
        self.reply(stream.id)
        return stream

    # -- writing
    def _send(self, frame: bytes) -> None:
        with self._wlock:
            self.sock.sendall(frame)

    def _send_control(self, kind: int, flags: int, payload: bytes) -> None:
        self._send(struct.pack(">HHB", 0x8000 | VERSION, kind, flags)
                   + len(payload).to_bytes(3, "big") + payload)

    def reply(self, sid: int) -> None:
        with self._wlock:  # the deflate stream's order is the wire's order
            block = self._deflate.compress(encode_headers({})) + \
                self._deflate.flush(zlib.Z_SYNC_FLUSH)
            payload = struct.pack(">I", sid) + block
            self.sock.sendall(struct.pack(">HHB", 0x8000 | VERSION, SYN_REPLY, 0)
                              + len(payload).to_bytes(3, "big") + payload)

    def send_data(self, sid: int, data: bytes, fin: bool = False) -> None:
        for start in range(0, max(len(data), 1), MAX_FRAME - 1):
            chunk = data[start:start + MAX_FRAME - 1]
            last = start + MAX_FRAME - 1 >= len(data)
            self._send(struct.pack(">IB", sid, FLAG_FIN if fin and last else 0)
                       + len(chunk).to_bytes(3, "big") + chunk)

    def reset(self, sid: int) -> None:
        self._send_control(RST_STREAM, 0, struct.pack(">II", sid, RST_CANCEL))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_control(GOAWAY, 0, struct.pack(">II", 0, 0))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
