"""The servicer over a real grpc hop (temp unix socket), driven through the Python SDK."""

from __future__ import annotations

import pytest

from clients.sdk.client import Client
from services.gateway.engine import Engine
from tests.unit.gateway.fakes import FakeShim
from tests.unit.gateway.test_engine import eventually
from vocab.errors import InvalidArgument, NotFound


def test_errors_cross_the_wire_typed(served: tuple[Engine, FakeShim, Client]) -> None:
    _, _, client = served
    with pytest.raises(NotFound, match="No such container: nope"):
        client.inspect("nope")
    with pytest.raises(NotFound, match="No such image: ghost"):
        client.create("ghost", ["true"])
    with pytest.raises(InvalidArgument, match="no command specified"):
        client.create("busybox", None, name="xx", entrypoint={"values": [""]})


def test_run_attached_over_grpc(served: tuple[Engine, FakeShim, Client]) -> None:
    _, runtime, client = served

    def script(c: str) -> None:
        runtime.emit(c, b"hello\n")
        runtime.exit(c, 4)

    runtime.on_start = script
    cid = client.create("busybox", ["echo", "hello"], auto_remove=True).id
    got: list[bytes] = []
    exit_status = client.run_attached(cid, lambda stream, data: got.append(data))
    assert got == [b"hello\n"] and exit_status.exit_code == 4
    assert client.containers(all=True) == []


def test_client_cancel_leaves_removal_to_the_watcher(
        served: tuple[Engine, FakeShim, Client]) -> None:
    engine, runtime, client = served
    runtime.on_start = lambda c: runtime.emit(c, b"tick\n")
    cid = client.create("busybox", ["sleep", "60"], auto_remove=True).id
    stream = client.attach(cid, start=True)
    assert next(stream).output.data == b"tick\n"
    stream.cancel()
    eventually(lambda: cid in engine._watching)
    assert engine.records.get(cid) is not None
    runtime.exit(cid, 0)
    eventually(lambda: engine.records.get(cid) is None)
