"""Reachability of a neighbour, by the standard gRPC health check (for Version)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vocab.channel import TlsFiles, channel
from vocab.errors import Unavailable
from vocab.version import VERSION

TIMEOUT = 2.0


def health_probe(address: str, name: str, tls: TlsFiles | None = None) -> Callable[[], str]:
    """A probe returning "<version> (serving)", or raising Unavailable with the reason."""

    def probe() -> str:
        try:
            with channel(address, tls) as ch:
                reply = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        except grpc.RpcError as err:
            raise Unavailable(f"{name} at {address}: {err.details() or err.code().name}")\
                from None
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        # The health check carries no version; all components ship in one release.
        return f"{VERSION} ({status.lower()})"

    return probe
