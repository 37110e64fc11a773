"""What a neighbour is, for the engine's Version: its release from its Version service."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vocab import versioning
from vocab.channel import TlsFiles, channel
from vocab.errors import Unavailable

TIMEOUT = 2.0


def health_probe(address: str, name: str, tls: TlsFiles | None = None) -> Callable[[], str]:
    """A probe returning "<release> (serving)" as the neighbour reports it, or raising
    Unavailable with the reason."""

    def probe() -> str:
        try:
            with channel(address, tls) as ch:
                reply = versioning.ask(ch, TIMEOUT)
                health = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        except grpc.RpcError as err:
            raise Unavailable(f"{name} at {address}: {err.details() or err.code().name}")\
                from None
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
        # A neighbour from before the Version service does not say its release.
        release = reply.version if reply is not None else "unknown release"
        return f"{release} ({status.lower()})"

    return probe
