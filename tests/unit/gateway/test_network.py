"""The gateway's part in networking: names resolved to IDs, the shim does the rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.gateway.engine import Engine
from services.gateway.records import Records
from tests.unit.gateway.fakes import FakeImages, FakeShim
from vocab.errors import FailedPrecondition, NotFound


class NetRuntime(FakeShim):
    """FakeShim that records the network calls."""

    def __init__(self) -> None:
        super().__init__()
        self.net_calls: list[tuple[str, Any]] = []

    def NetworkConnect(self, req: Any) -> Any:  # noqa: N802
        self.net_calls.append(("connect", req))
        return shim_pb2.NetworkConnectResponse()

    def NetworkDisconnect(self, req: Any) -> Any:  # noqa: N802
        self.net_calls.append(("disconnect", req))
        return shim_pb2.NetworkDisconnectResponse()

    def NetworkList(self, req: Any) -> Any:  # noqa: N802
        return shim_pb2.NetworkListResponse(networks=[
            types_pb2.NetworkInfo(name="bridge", builtin=True)])


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Engine, NetRuntime]]:
    runtime = NetRuntime()
    eng = Engine(Records(tmp_path / "gw"), FakeImages(), runtime)
    yield eng, runtime
    eng.records.close()


def _create(eng: Engine, **fields: Any) -> str:
    req = engine_pb2.CreateContainerRequest(image="busybox", **fields)
    req.cmd.values.append("true")
    return eng.create(req).id


def test_container_mode_and_connect_resolve_names(setup: tuple[Engine, NetRuntime]) -> None:
    eng, runtime = setup
    first = _create(eng, name="db")
    second = _create(eng, name="app", network_mode="container:db",
                     network_aliases=["api"])
    spec = runtime.containers[second]["spec"]
    assert spec.network_mode == f"container:{first}"
    assert list(spec.network_aliases) == ["app", "api"]
    eng.connect_network("backend", "db", ["primary"])
    eng.disconnect_network("backend", "db")
    (kind, req), (kind2, req2) = runtime.net_calls
    assert (kind, req.id, req.network, list(req.aliases)) == \
        ("connect", first, "backend", ["db", "primary"])
    assert (kind2, req2.id) == ("disconnect", first)
    # docker's pre-defined host and none follow the default network
    assert [n.name for n in eng.list_networks().networks] == ["bridge", "host", "none"]
    assert eng.inspect_network("none").driver == "null"
    with pytest.raises(FailedPrecondition, match="pre-defined network"):
        eng.remove_network("host")
    with pytest.raises(NotFound):
        _create(eng, name="xy", network_mode="container:nosuch")
    assert set(runtime.containers) == {first, second}  # the failed create left nothing
