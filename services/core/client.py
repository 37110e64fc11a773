"""Client side of the contracts: channels to muelle addresses and typed errors.

``connect(address, StubClass, "imagestore")`` returns a stub whose calls raise
``vocab.errors`` exceptions instead of ``grpc.RpcError``, for unary and
streaming calls alike.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import grpc

from services.core.logging import get_logger
from vocab.channel import READY_WAIT, TlsFiles, channel
from vocab.errors import from_rpc_error

T = TypeVar("T")


class _Readiness:
    """Whether a channel is connected, as gRPC reports it (a thread of gRPC's calls back).

    A call on a channel waiting out its reconnect backoff fails at once with UNAVAILABLE,
    though the peer may be serving again. So before a call on a channel that is not READY
    we wait (bounded) until it is: the call itself is unchanged, and only sent once there
    is a connection, so nothing runs twice. A peer that stays down costs each call
    READY_WAIT, then the usual UNAVAILABLE."""

    def __init__(self, ch: grpc.Channel, contract: Contract | None = None) -> None:
        self._channel = ch
        self._contract = contract
        self._checked = False  # the contract, on the current connection
        self.state: grpc.ChannelConnectivity | None = None
        # Connect now, not at the first call: grpc's connectivity poller, once running,
        # only sees a later request to connect (channel_ready_future's) when its 0.2 s
        # watch of the current state runs out, so a fresh channel's first call waited
        # ~0.2 s for a unix socket that connects in microseconds (the image store's
        # first Resolve of a pull: 0.22 s, 0.01 s connecting here).
        ch.subscribe(self._update, try_to_connect=True)

    def _update(self, state: grpc.ChannelConnectivity) -> None:
        if state is not grpc.ChannelConnectivity.READY:
            self._checked = False  # a new connection may reach another peer (an upgrade)
        self.state = state

    def wait(self) -> None:
        if self.state is not grpc.ChannelConnectivity.READY:
            # On a timeout the call goes ahead and fails as it would have.
            with contextlib.suppress(grpc.FutureTimeoutError):
                grpc.channel_ready_future(self._channel).result(timeout=READY_WAIT)
        if self._contract is not None and not self._checked:
            self._contract.check(self._channel)
            self._checked = True


class Contract:
    """The versioned contract (``muelle.images.v1.Images``) a client needs of its peer.

    Every muelle server reports the contracts it serves in its Version service
    (services/core/versioning.py), so on each new connection one Version call tells
    whether the peer serves it: a peer of another release gets one clear
    FailedPrecondition at connect instead of UNIMPLEMENTED on some later call. A peer
    without a Version service is asked the health check by contract name; one without
    either (a test's fake) is taken as it is."""

    def __init__(self, name: str, service: str, address: str, caller: str = "") -> None:
        self.name = name
        self.service = service
        self.address = address
        self.caller = caller

    @classmethod
    def of(cls, stub_class: type, service: str, address: str,
           caller: str = "") -> Contract | None:
        """The contract of a generated ``XStub`` (package from its _pb2 module)."""
        import importlib

        module = stub_class.__module__
        if not module.endswith("_pb2_grpc") or not stub_class.__name__.endswith("Stub"):
            return None
        try:
            package = importlib.import_module(module[:-len("_grpc")]).DESCRIPTOR.package
        except (ImportError, AttributeError):
            return None
        return cls(f"{package}.{stub_class.__name__[:-len('Stub')]}", service, address,
                   caller)

    def check(self, ch: grpc.Channel, timeout: float = READY_WAIT) -> None:
        from vocab.versioning import check

        check(ch, self.name, self.service, self.address, self.caller, timeout)


def require(address: str, stub_class: type, service: str, tls: TlsFiles | None,
            caller: str, timeout: float = READY_WAIT) -> None:
    """Refuse to start ``caller`` (FailedPrecondition) when the peer at ``address``
    answers but does not serve the contract of ``stub_class``: a gateway started against
    a shim of another release stops at once with that line, not at its first container.
    A peer not reachable yet is left to the check at connect."""
    contract = Contract.of(stub_class, service, address, caller)
    if contract is None:
        return
    with channel(address, tls) as ch:
        try:
            grpc.channel_ready_future(ch).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            get_logger(service=caller).warning("peer not reachable at start; its "
                                               "contract is checked at connect",
                                               peer=service, address=address)
            return
        contract.check(ch, timeout)


class _Connection:
    """The channel, stub and readiness of one peer; rebuilt when our TLS files change.

    grpc's channel credentials are fixed, so a service whose certificate was renewed
    (muelle-certs renew) would present the old one to its neighbours until a restart, and
    fail once it expired. Before a call (at most once a second) the files are compared
    with what the channel was built from; a changed set builds a new channel for the
    calls that follow (calls under way finish on the old one)."""

    RECHECK = 1.0

    def __init__(self, address: str, stub_class: type, service: str,
                 tls: TlsFiles | None, caller: str = "") -> None:
        self.address, self.stub_class, self.service, self.tls = \
            address, stub_class, service, tls
        self.caller = caller
        self._renewable = tls is not None and tls.configured and not tls.insecure
        self._stamps: tuple[tuple[int, int], ...] = ()
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self.stub, self.readiness = self._build()

    def _build(self) -> tuple[Any, _Readiness]:
        if self._renewable:
            from services.core.tls import stamps
            assert self.tls is not None
            self._stamps = stamps(self.tls)
        ch = channel(self.address, self.tls)
        return (self.stub_class(ch),
                _Readiness(ch, Contract.of(self.stub_class, self.service, self.address,
                                        self.caller)))

    def current(self) -> tuple[Any, _Readiness]:
        if self._renewable and time.monotonic() - self._checked_at >= self.RECHECK:
            from services.core.tls import stamps
            assert self.tls is not None
            with self._lock:
                self._checked_at = time.monotonic()
                if stamps(self.tls) != self._stamps:
                    get_logger(service=self.service).info(
                        "TLS certificates changed; new connection", cert=self.tls.cert)
                    self.stub, self.readiness = self._build()
        return self.stub, self.readiness


class _TypedErrors:
    """Wraps a generated stub; every call raises typed MuelleErrors."""

    def __init__(self, stub: Any, service: str, readiness: _Readiness | None = None,
                 connection: _Connection | None = None) -> None:
        self._stub = stub
        self._service = service
        self._readiness = readiness
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        getattr(self._stub, name)  # an unknown method fails here, as on the stub
        service = self._service
        connection = self._connection

        def call(*args: Any, **kwargs: Any) -> Any:
            readiness: _Readiness | None
            if connection is not None:
                stub, readiness = connection.current()
            else:
                stub, readiness = self._stub, self._readiness
            if readiness is not None:
                readiness.wait()
            try:
                result = getattr(stub, name)(*args, **kwargs)
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


def connect(address: str, stub_class: type[T], service: str,
            tls: TlsFiles | None = None, caller: str = "") -> T:
    """A stub for ``stub_class`` on ``address`` whose calls raise typed errors; over mutual
    TLS with ``tls`` (our certificate) when the address is TCP. ``caller`` names us in
    the refusal of a peer that lacks the contract (versioning.check)."""
    connection = _Connection(address, stub_class, service, tls, caller)
    return _TypedErrors(connection.stub, service, connection.readiness,  # type: ignore[return-value]
                        connection)
