"""Client side of the contracts: channels to muelle addresses and typed errors.

``connect(address, StubClass, "imagestore")`` returns a stub whose calls raise
``services.core.errors`` exceptions instead of ``grpc.RpcError``, for unary and
streaming calls alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import grpc

from services.core.errors import from_rpc_error

MAX_MESSAGE = 64 * 1024 * 1024
# Both ends of every channel: archives and manifests may be large.
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]

T = TypeVar("T")


def target(address: str) -> str:
    """Turn a muelle address (unix:///path, tcp://host:port, host:port) into a gRPC target."""
    if address.startswith("unix://"):
        return "unix:" + address[len("unix://") :]
    if address.startswith("tcp://"):
        return address[len("tcp://") :]
    return address


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(target(address), options=GRPC_OPTIONS)


class _TypedErrors:
    """Wraps a generated stub; every call raises typed MuelleErrors."""

    def __init__(self, stub: Any, service: str) -> None:
        self._stub = stub
        self._service = service

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        service = self._service

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = method(*args, **kwargs)
            except grpc.RpcError as err:
                raise from_rpc_error(err, service) from None
            if isinstance(result, grpc.Call) and isinstance(result, Iterator):
                return TypedStream(result, service)
            return result

        return call


class TypedStream(Iterator[T]):
    """A server stream whose errors are typed; ``cancel()`` ends it from our side."""

    def __init__(self, call: Any, service: str) -> None:
        self._call = call
        self._service = service

    def __next__(self) -> T:
        try:
            return next(self._call)  # type: ignore[no-any-return]
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                raise StopIteration from None
            raise from_rpc_error(err, self._service) from None

    def cancel(self) -> None:
        self._call.cancel()


def connect(address: str, stub_class: type[T], service: str) -> T:
    """A stub for ``stub_class`` on ``address`` whose calls raise typed errors."""
    stub: Any = stub_class(channel(address))  # type: ignore[call-arg]
    return _TypedErrors(stub, service)  # type: ignore[return-value]
