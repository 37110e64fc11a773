"""clients/sdk/wire.py against a real grpcio server: unary and streaming calls, large
messages, interleaved streams, cancel, typed errors; HPACK against RFC 7541's examples."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from clients.sdk import wire
from tests.support.grpc_server import serving
from vocab.errors import FailedPrecondition, NotFound, Unavailable


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request.startswith(b"fail:"):
        context.abort(grpc.StatusCode.NOT_FOUND, request[5:].decode())
    return request[::-1]


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    count, size = (int(x) for x in request.decode().split(","))
    for i in range(count):
        yield bytes([i % 256]) * size
    if size == 1:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "stopped after the messages")


def _upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    """Build's shape: every request read, then replies (their sizes and a digest)."""
    import hashlib

    sizes, digest = [], hashlib.sha256()
    for request in requests:
        if request == b"fail":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "refused the upload")
        sizes.append(len(request))
        digest.update(request)
    yield ",".join(map(str, sizes)).encode()
    yield digest.digest()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving("t.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(_unary),
                            "Stream": grpc.unary_stream_rpc_method_handler(_stream),
                            "Upload": grpc.stream_stream_rpc_method_handler(_upload)}
                 ) as address:
        yield address


def test_unary_calls_share_one_connection(server: str) -> None:
    ch = wire.Channel(server)
    try:
        for i in range(50):
            msg = f"hello {i}".encode()
            assert wire.call(ch, "/t.Echo/Unary", msg) == msg[::-1]
        big = bytes(range(256)) * 200  # 51200 bytes: several DATA frames each way
        assert wire.call(ch, "/t.Echo/Unary", big) == big[::-1]
    finally:
        ch.close()


def test_errors_are_typed_with_the_servers_message(server: str) -> None:
    ch = wire.Channel(server)
    try:
        with pytest.raises(NotFound, match="^no such thing: ü 100% \\[x\\]$"):
            wire.call(ch, "/t.Echo/Unary", "fail:no such thing: ü 100% [x]".encode())
        # the connection stays usable after an error
        assert wire.call(ch, "/t.Echo/Unary", b"ab") == b"ba"
    finally:
        ch.close()


def test_stream_of_large_messages(server: str) -> None:
    ch = wire.Channel(server)
    try:
        _sid, messages = wire.stream(ch, "/t.Echo/Stream", b"40,100000")  # ~4 MB
        got = list(messages)
        assert [len(m) for m in got] == [100000] * 40
        assert all(m == bytes([i]) * 100000 for i, m in enumerate(got))
    finally:
        ch.close()


def test_upload_larger_than_the_flow_control_windows(server: str) -> None:
    """Requests of ~3 MB in all: more than the peer's first windows, so the sending waits
    for WINDOW_UPDATE frames; every byte arrives in order, and the connection stays usable."""
    import hashlib

    chunks = [bytes([i]) * (100000 + i) for i in range(30)] + [b""]
    ch = wire.Channel(server)
    try:
        _sid, replies = wire.upload(ch, "/t.Echo/Upload", iter(chunks))
        sizes, digest = list(replies)
        assert sizes.decode() == ",".join(str(len(c)) for c in chunks)
        assert digest == hashlib.sha256(b"".join(chunks)).digest()
        assert wire.call(ch, "/t.Echo/Unary", b"ab") == b"ba"
    finally:
        ch.close()


def test_upload_refused_early_stops_sending(server: str) -> None:
    """The server ends the call after the first request: the rest is not sent (the
    generator is not drained) and the status is the typed error."""
    sent = []
    total = 1000  # 64 MiB: more than any flow-control window lets through unread (200, 13
    # MiB, all went out once under the full suite's load, before the server's refusal)

    def requests() -> Iterator[bytes]:
        for i in range(total):
            sent.append(i)
            yield b"fail" if i == 0 else b"x" * 65536

    ch = wire.Channel(server)
    try:
        _sid, replies = wire.upload(ch, "/t.Echo/Upload", requests())
        with pytest.raises(FailedPrecondition, match="refused the upload"):
            list(replies)
        assert len(sent) < total
        assert wire.call(ch, "/t.Echo/Unary", b"ab") == b"ba"
    finally:
        ch.close()


def test_error_after_messages(server: str) -> None:
    ch = wire.Channel(server)
    try:
        _sid, messages = wire.stream(ch, "/t.Echo/Stream", b"3,1")
        assert next(messages) == b"\x00"
        with pytest.raises(FailedPrecondition, match="stopped after the messages"):
            list(messages)
    finally:
        ch.close()


def test_interleaved_streams_and_cancel(server: str) -> None:
    ch = wire.Channel(server)
    try:
        sid_a, a = wire.stream(ch, "/t.Echo/Stream", b"1000,10")
        _sid_b, b = wire.stream(ch, "/t.Echo/Stream", b"5,10")
        assert next(a) == b"\x00" * 10
        assert len(list(b)) == 5  # frames of a read meanwhile are kept for a
        assert next(a) == b"\x01" * 10
        ch.cancel(sid_a)
        assert wire.call(ch, "/t.Echo/Unary", b"xy") == b"yx"
    finally:
        ch.close()


def test_calls_from_threads(server: str) -> None:
    ch = wire.Channel(server)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                msg = f"{n}-{i}".encode()
                assert wire.call(ch, "/t.Echo/Unary", msg) == msg[::-1]
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ch.close()
    assert not errors


def test_unreachable_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot connect"):
        wire.call(wire.Channel(f"unix://{tmp_path}/nope.sock"), "/t.Echo/Unary", b"")


def test_hpack_integer_examples() -> None:
    # RFC 7541 C.1
    assert wire._encode_int(10, 5, 0) == b"\x0a"
    assert wire._encode_int(1337, 5, 0) == b"\x1f\x9a\x0a"
    assert wire._encode_int(42, 8, 0) == b"\x2a"


def test_hpack_decodes_rfc_requests_with_the_dynamic_table() -> None:
    # RFC 7541 C.3: three requests without Huffman coding, on one connection.
    dec = wire.Decoder()
    first = bytes.fromhex("828684410f7777772e6578616d706c652e636f6d")
    assert dec.decode(first) == [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                                 (":authority", "www.example.com")]
    second = bytes.fromhex("828684be58086e6f2d6361636865")
    assert dec.decode(second)[-2:] == [(":authority", "www.example.com"),
                                       ("cache-control", "no-cache")]
    third = bytes.fromhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565")
    assert dec.decode(third) == [(":method", "GET"), (":scheme", "https"),
                                 (":path", "/index.html"), (":authority", "www.example.com"),
                                 ("custom-key", "custom-value")]
    assert dec.size == 164


def test_hpack_huffman_strings() -> None:
    # RFC 7541 C.4.1: the first request, Huffman-coded.
    dec = wire.Decoder()
    data = bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff")
    assert dec.decode(data)[-1] == (":authority", "www.example.com")


def test_encoded_headers_decode_back() -> None:
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/a.B/C"),
               ("content-type", "application/grpc"), ("te", "trailers"), ("x-long", "v" * 300)]
    assert wire.Decoder().decode(wire.encode_headers(headers)) == headers


def test_percent_decode() -> None:
    assert wire.percent_decode("a%20b%C3%BC%25") == "a bü%"
    assert wire.percent_decode("100%") == "100%"
