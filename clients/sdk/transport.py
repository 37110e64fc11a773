"""How ``Client``'s calls reach the gateway: one ``Transport`` interface, two of them.

- ``GrpcTransport``: grpcio and the generated protobuf classes; every kind of call.
- ``WireTransport``: clients/sdk/wire.py (a stdlib HTTP/2 client) and the protobuf-free
  messages of lite.py, for the CLI: a short-lived process spares grpcio's and protobuf's
  import and shutdown (~130 ms). It carries unary and server-streaming calls whose request
  fits the peer's first flow-control window, and uploads (a bidirectional call whose
  replies wait for its last request: Build); the rest (client streams, interactive
  bidirectional calls, larger requests, the health check) it hands to a
  ``GrpcTransport`` made on first need.

A transport's ``pb`` and ``types`` are the modules whose message classes it sends (lite's
or the generated ones); its calls raise vocab.errors classes, never grpc ones.
"""

from __future__ import annotations

# collections.abc would import the collections package (~3 ms of every CLI start)
from _collections_abc import Iterator

from clients.sdk import lite, wire

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import grpc


class Stream(Iterator["Any"]):  # a string: typing is not imported at run time
    """A server stream whose errors are typed; ``cancel()`` ends it from our side."""

    def __next__(self) -> Any:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError


class Transport:
    """The calls of engine.v1 by method name ("CreateContainer"), by the kind of call."""

    pb: Any  # the engine.v1 message classes this transport sends
    types: Any  # the types.v1 ones

    def unary(self, method: str, request: Any) -> Any:
        raise NotImplementedError

    def server_stream(self, method: str, request: Any) -> Stream:
        raise NotImplementedError

    def client_stream(self, method: str, requests: Iterator[Any]) -> Any:
        """Requests in, one reply (LoadImages, ImportImage): generated messages."""
        raise NotImplementedError

    def bidi_stream(self, method: str, requests: Iterator[Any]) -> Stream:
        """Requests in, a stream out (ExecContainer, AttachContainerStream)."""
        raise NotImplementedError

    def upload_stream(self, method: str, requests: Iterator[Any]) -> Stream:
        """A bidirectional call whose replies wait for the last request (Build): lite or
        generated messages, as ``pb`` is."""
        return self.bidi_stream(method, requests)

    def healthy(self, timeout: float) -> bool:
        """True when the gateway answers its health check."""
        raise NotImplementedError

    def version(self) -> Any:
        """The gateway's muelle.version.v1 VersionResponse; None if it predates that service."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _generated(message: Any) -> Any:
    """The generated (protobuf) class of a lite message, for grpcio."""
    from muelle.engine.v1 import engine_pb2
    from muelle.types.v1 import types_pb2

    package, _, name = message._full_name.rpartition(".")
    module = engine_pb2 if package == "muelle.engine.v1" else types_pb2
    return getattr(module, name).FromString(message.SerializeToString())


class GrpcTransport(Transport):
    """grpcio, over vocab.channel's channel (mutual TLS over TCP when ``tls`` is given)."""

    def __init__(self, host: str, tls: tuple[str, str, str] | None) -> None:
        from muelle.engine.v1 import engine_pb2
        from muelle.types.v1 import types_pb2

        self.pb, self.types = engine_pb2, types_pb2
        self._host = host
        self._tls = tls
        self._channel: grpc.Channel | None = None
        self._stub: Any = None

    def _engine(self) -> Any:
        if self._stub is None:
            from muelle.engine.v1 import engine_pb2_grpc

            self._stub = engine_pb2_grpc.EngineStub(self._connected())
        return self._stub

    def _connected(self) -> grpc.Channel:
        if self._channel is None:
            from vocab.channel import TlsFiles, channel

            self._channel = channel(self._host, TlsFiles(*self._tls) if self._tls else None)
        return self._channel

    def _invoke(self, method: str, request: Any) -> Any:
        """The call with typed errors (no service prefix: the message is the gateway's)."""
        import grpc

        from vocab.errors import from_rpc_error

        try:
            return getattr(self._engine(), method)(request)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def unary(self, method: str, request: Any) -> Any:
        if isinstance(request, lite.Message):
            request = _generated(request)
        return self._invoke(method, request)

    def server_stream(self, method: str, request: Any) -> Stream:
        if isinstance(request, lite.Message):
            request = _generated(request)
        return GrpcStream(self._invoke(method, request))

    def client_stream(self, method: str, requests: Iterator[Any]) -> Any:
        return self._invoke(method, requests)

    def bidi_stream(self, method: str, requests: Iterator[Any]) -> Stream:
        return GrpcStream(self._invoke(method, requests))

    def healthy(self, timeout: float) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc  # only on this rare path

        try:
            reply = health_pb2_grpc.HealthStub(self._connected()).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def version(self) -> Any:
        from vocab.versioning import ask

        return ask(self._connected())

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


class WireTransport(Transport):
    """wire.py and lite messages where they do; a GrpcTransport for the rest."""

    def __init__(self, host: str, tls: tuple[str, str, str] | None) -> None:
        self.pb, self.types = lite.engine, lite.types
        self._host = host
        self._tls = tls
        self._wire = wire.Channel(host, tls=tls)
        self._grpc: GrpcTransport | None = None

    @staticmethod
    def supports(host: str) -> bool:
        return wire.supports(host)

    def _fallback(self) -> GrpcTransport:
        if self._grpc is None:
            self._grpc = GrpcTransport(self._host, self._tls)
        return self._grpc

    def _small(self, request: Any) -> bytes | None:
        """The request's bytes when wire can send it (a lite message that fits)."""
        if not isinstance(request, lite.Message):
            return None
        data = request.SerializeToString()
        return data if len(data) < wire.MAX_REQUEST else None

    def unary(self, method: str, request: Any) -> Any:
        data = self._small(request)
        if data is None:
            return self._fallback().unary(method, request)
        reply = wire.call(self._wire, lite.method_path(method), data)
        return lite.method_types(method)[1].FromString(reply)

    def server_stream(self, method: str, request: Any) -> Stream:
        data = self._small(request)
        if data is None:
            return self._fallback().server_stream(method, request)
        sid, messages = wire.stream(self._wire, lite.method_path(method), data)
        return WireStream(self._wire, sid, messages, lite.method_types(method)[1])

    def client_stream(self, method: str, requests: Iterator[Any]) -> Any:
        return self._fallback().client_stream(method, requests)

    def bidi_stream(self, method: str, requests: Iterator[Any]) -> Stream:
        return self._fallback().bidi_stream(method, requests)

    def upload_stream(self, method: str, requests: Iterator[Any]) -> Stream:
        # Over wire (sending with flow control): `muelle build` spares grpcio's import.
        sid, messages = wire.upload(self._wire, lite.method_path(method),
                                    (r.SerializeToString() for r in requests))
        return WireStream(self._wire, sid, messages, lite.method_types(method)[1])

    def healthy(self, timeout: float) -> bool:
        return self._fallback().healthy(timeout)

    def version(self) -> Any:
        from muelle.version.v1 import version_pb2

        from vocab.versioning import VERSION_PATH

        return version_pb2.VersionResponse.FromString(wire.call(self._wire, VERSION_PATH, b""))

    def close(self) -> None:
        self._wire.close()
        if self._grpc is not None:
            self._grpc.close()


class GrpcStream(Stream):
    """A server stream over grpcio."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __next__(self) -> Any:
        import grpc

        from vocab.errors import from_rpc_error

        try:
            return next(self._call)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                raise StopIteration from None
            raise from_rpc_error(err) from None

    def cancel(self) -> None:
        self._call.cancel()


class WireStream(Stream):
    """A server stream over clients/sdk/wire.py, with Stream's interface."""

    def __init__(self, channel: wire.Channel, sid: int, messages: Iterator[bytes],
                 cls: Any) -> None:
        self._channel = channel
        self._sid = sid
        self._messages = messages
        self._cls = cls
        self._cancelled = False

    def __next__(self) -> Any:
        if self._cancelled:
            raise StopIteration
        return self._cls.FromString(next(self._messages))

    def cancel(self) -> None:
        if not self._cancelled:
            self._cancelled = True
            self._channel.cancel(self._sid)
