"""Client side of the contracts: channels to muelle addresses and typed errors.

``connect(address, StubClass, "imagestore")`` returns a stub whose calls raise
``services.core.errors`` exceptions instead of ``grpc.RpcError``, for unary and
streaming calls alike.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import grpc

from services.core.errors import InvalidArgument, from_rpc_error
from services.core.logging import get_logger

# typing costs ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from services.core.tls import TlsFiles

MAX_MESSAGE = 64 * 1024 * 1024
# Reconnect backoff of a channel whose peer went away (a service restarting). gRPC's
# default starts at 1 s and grows 1.6x to 120 s, and a call made while the channel waits
# out its backoff fails at once: after a restart the gateway kept failing for ~4 s
# (issue 19) though the shim served again. Our peers are local sockets where a failed
# connect costs a syscall, so retry every 100 ms, at most 1 s apart; and a call made while
# the channel is not connected waits (at most READY_WAIT) for the next attempt instead of
# failing (_Readiness).
RECONNECT_MIN_MS = 100
RECONNECT_MAX_MS = 1000
READY_WAIT = 2.0
# Both ends of every channel: archives and manifests may be large.
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.initial_reconnect_backoff_ms", RECONNECT_MIN_MS),
    ("grpc.min_reconnect_backoff_ms", RECONNECT_MIN_MS),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
]

# A TCP peer that stops answering mid-call (a cut link, a host gone) must fail the call,
# not hang it: HTTP/2 pings every KEEPALIVE_TIME_MS while a call is open, and a ping not
# answered within KEEPALIVE_TIMEOUT_MS closes the connection (UNAVAILABLE), so a stalled
# call fails within about 10 s. Unix sockets need none of it. Servers accept these pings
# (server.SERVER_OPTIONS).
KEEPALIVE_TIME_MS = 5000
KEEPALIVE_TIMEOUT_MS = 5000
TCP_OPTIONS = [
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
]

T = TypeVar("T")


def target(address: str) -> str:
    """Turn a muelle address (unix:///path, tcp://host:port, host:port) into a gRPC target."""
    if address.startswith("unix://"):
        return "unix:" + address[len("unix://") :]
    if address.startswith("tcp://"):
        return address[len("tcp://") :]
    return address


def _plan(address: str, tls: TlsFiles | None
          ) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, int]]]:
    """The credentials (None: plain) and options of a channel to ``address``: mutual TLS
    over TCP when ``tls`` has material (our certificate, and the CA the peer's must be
    signed by); plain to a unix socket, and to a loopback address when ``tls`` has none
    or says insecure; anything else refused."""
    from services.core.tls import channel_credentials, is_loopback, tcp_host

    host = tcp_host(address)
    if host is None or (tls is not None and tls.insecure) or (
            (tls is None or not tls.configured) and is_loopback(host)):
        if host is not None and not is_loopback(host):
            raise InvalidArgument(f"refusing plain TCP to {address}: insecure is allowed "
                                  f"on loopback only; configure TLS ca, cert and key")
        return None, GRPC_OPTIONS if host is None else GRPC_OPTIONS + TCP_OPTIONS
    if tls is None or not tls.configured:
        raise InvalidArgument(f"{address} is reached over mutual TLS: configure [tls] ca, "
                              f"cert and key (the CLI: MUELLE_CERT_PATH or --tls* flags)")
    return channel_credentials(tls), GRPC_OPTIONS + TCP_OPTIONS


def channel(address: str, tls: TlsFiles | None = None) -> grpc.Channel:
    """A channel to ``address`` (see _plan for when it is TLS, plain, or refused)."""
    creds, options = _plan(address, tls)
    if creds is None:
        return grpc.insecure_channel(target(address), options=options)
    return grpc.secure_channel(target(address), creds, options=options)


def aio_channel(address: str, tls: TlsFiles | None = None) -> grpc.aio.Channel:
    """The same channel for asyncio callers (the Docker API's connection to a gateway:
    ``aio_channel(cfg.address("gateway"), cfg.tls_files("dockerapi"))``)."""
    creds, options = _plan(address, tls)
    if creds is None:
        return grpc.aio.insecure_channel(target(address), options=options)
    return grpc.aio.secure_channel(target(address), creds, options=options)


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
        ch.subscribe(self._update)

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
        from services.core.versioning import check

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
        return (self.stub_class(ch),  # type: ignore[call-arg]
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
