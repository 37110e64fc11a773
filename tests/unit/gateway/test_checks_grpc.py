"""The gateway's own checks, hit over gRPC with raw requests (no CLI, no SDK in between):
the CLI and the shim check some of these again, so only a request that skips the CLI shows
that the gateway refuses it, before any container record or runtime call exists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc
from muelle.types.v1 import types_pb2

from clients.sdk.client import Client
from services.gateway.engine import Engine
from tests.unit.gateway.fakes import FakeShim

Port = types_pb2.NetworkPort


@pytest.fixture
def stub(served: tuple[Engine, FakeShim, Client]) -> Iterator[Any]:
    _, _, client = served
    with grpc.insecure_channel(client.host) as channel:
        yield engine_pb2_grpc.EngineStub(channel)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"ports": [Port(container_port=0)]}, "invalid port 0"),
    ({"ports": [Port(container_port=65536)]}, "invalid port 65536"),
    ({"ports": [Port(container_port=80, host_port=65536)]}, "invalid host port 65536"),
    ({"ports": [Port(container_port=80, protocol="sctp")]}, "invalid protocol"),
    ({"ports": [Port(container_port=80, host_ip="not-an-ip")]}, "invalid host IP"),
    ({"ports": [Port(container_port=80, host_ip="10.0.0.300")]}, "invalid host IP"),
    ({"hostname": "a/b"}, "invalid hostname"),
    ({"hostname": "a b"}, "invalid hostname"),
    ({"hostname": "a\tb"}, "invalid hostname"),
    ({"hostname": "a\nb"}, "invalid hostname"),
    ({"hostname": "x" * 254}, "invalid hostname"),
    ({"stop_timeout": -2}, "invalid stop timeout"),
    ({"stop_signal": "SIGNOPE"}, "invalid signal"),
    ({"labels": {"": "v"}}, "label keys must not be empty"),
    ({"network_mode": "container:"}, "needs a container name"),
]


@pytest.mark.parametrize(("fields", "message"), BAD, ids=[m + "-" + str(i)
                                                           for i, (_, m) in enumerate(BAD)])
def test_bad_create_is_refused_by_the_gateway(
        served: tuple[Engine, FakeShim, Client], stub: Any, fields: dict[str, Any],
        message: str) -> None:
    engine, runtime, _ = served
    req = engine_pb2.CreateContainerRequest(image="busybox", name="bad", **fields)
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateContainer(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")
    assert "Create" not in runtime.calls and engine.records.all(include_unready=True) == []


@pytest.mark.parametrize("fields", [
    {"ports": [Port(container_port=65535, host_port=65535, protocol="udp",
                    host_ip="127.0.0.1")]},
    {"hostname": "x" * 253}, {"hostname": "web-1.example"}, {"stop_timeout": -1},
])
def test_edge_values_are_accepted(served: tuple[Engine, FakeShim, Client], stub: Any,
                                  fields: dict[str, Any]) -> None:
    _, runtime, _ = served
    stub.CreateContainer(engine_pb2.CreateContainerRequest(image="busybox", name="ok",
                                                           **fields))
    assert runtime.calls == ["Create"]
