"""Version negotiation: what a server serves (muelle.version.v1) and what a caller needs.

Every server started by ``services.core.server.start`` serves ``muelle.version.v1.Version``
beside its own contracts. The list it reports is not written by hand: ``Recording``
notes every gRPC service the service's ``register`` callback adds to the server, so a
shim serving ``muelle.shim.v1.Shim`` reports exactly that, whatever its factory calls it.

A caller names the contract it needs (``muelle.images.v1.Images``, from the generated
stub) and asks the peer once per connection (``check``): a peer without it is refused
with one clear FailedPrecondition naming what the peer does serve, before any call is
made, instead of UNIMPLEMENTED halfway through an operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from vocab.errors import FailedPrecondition
from vocab.version import VERSION

# What the peer's Version answer is waited for at connect (a peer that does not answer
# within it is left to fail the call itself, with its own error).
TIMEOUT = 2.0
# The call's path, for clients that speak HTTP/2 themselves (clients/sdk/wire.py).
VERSION_PATH = "/muelle.version.v1.Version/Version"


def version_service_name() -> str:
    from muelle.version.v1 import version_pb2

    return str(version_pb2.DESCRIPTOR.services_by_name["Version"].full_name)


class Recording:
    """A grpc.Server seen by a ``register`` callback: passes everything on and notes the
    full name of each service added (generated ``add_*Servicer_to_server`` functions add
    a generic handler and, in grpcio >= 1.62, registered method handlers: both noted)."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server
        self._names: dict[str, None] = {}

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def add_generic_rpc_handlers(
            self, handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]) -> None:
        given = tuple(handlers)
        for handler in given:
            service_name = getattr(handler, "service_name", None)
            if callable(service_name) and service_name():
                self._names[str(service_name())] = None
        self._server.add_generic_rpc_handlers(given)

    def add_registered_method_handlers(
            self, service_name: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
        self._names[service_name] = None
        # Not in grpc-stubs' Server yet.
        self._server.add_registered_method_handlers(  # type: ignore[attr-defined]
            service_name, handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


def add_version_service(server: grpc.Server, component: str,
                        services: Sequence[str]) -> None:
    """Serve muelle.version.v1.Version on ``server``: ``component``, this release, and
    ``services`` (sorted; this service's own name added)."""
    from muelle.version.v1 import version_pb2, version_pb2_grpc

    reply = version_pb2.VersionResponse(
        component=component, version=VERSION,
        services=sorted({*services, version_service_name()}))

    class Servicer(version_pb2_grpc.VersionServicer):
        def Version(self, request: version_pb2.VersionRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> version_pb2.VersionResponse:
            return reply

    version_pb2_grpc.add_VersionServicer_to_server(Servicer(), server)


def ask(ch: grpc.Channel, timeout: float = TIMEOUT) -> Any:
    """The peer's VersionResponse; None for a peer that predates the Version service.
    Other failures (unreachable, refused) raise grpc.RpcError."""
    from muelle.version.v1 import version_pb2, version_pb2_grpc

    try:
        return version_pb2_grpc.VersionStub(ch).Version(version_pb2.VersionRequest(),
                                                        timeout=timeout)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            return None
        raise


def lacks(contract: str, peer: str, address: str, reply: Any, caller: str = "") -> \
        FailedPrecondition:
    """The refusal when ``reply`` (the peer's VersionResponse) does not list ``contract``."""
    own = [s for s in reply.services if not s.startswith(("grpc.", "muelle.version."))]
    serves = ", ".join(own) or "no muelle contract"
    needs = f"{caller} needs" if caller else "this client needs"
    return FailedPrecondition(
        f"{peer} at {address} (muelle {reply.version or '?'}) does not serve {contract}, "
        f"which {needs}; it serves {serves}: run matching muelle releases")


def check(ch: grpc.Channel, contract: str, peer: str, address: str, caller: str = "",
          timeout: float = TIMEOUT) -> None:
    """Raise FailedPrecondition when the peer on ``ch`` does not serve ``contract``.

    A peer without the Version service is asked the standard health check by contract
    name (every muelle server reports its contracts there too); a peer that cannot be
    reached or asked is let be: the call itself then says what is wrong."""
    try:
        reply = ask(ch, timeout)
    except grpc.RpcError:
        return
    if reply is not None:
        if contract not in reply.services:
            raise lacks(contract, peer, address, reply, caller)
        return
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=contract), timeout=timeout)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            raise FailedPrecondition(
                f"{peer} at {address} does not serve {contract}, the contract version "
                f"{caller + ' needs' if caller else 'this client needs'} (another muelle "
                f"release?)") from None
