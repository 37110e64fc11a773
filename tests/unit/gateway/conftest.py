"""The gateway's servicer over a real grpc hop (temp unix socket), on fake back ends."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from muelle.engine.v1 import engine_pb2_grpc

from clients.sdk.client import Client
from services.core.server import ErrorInterceptor
from services.gateway.engine import Engine
from services.gateway.records import Records
from services.gateway.server import EngineServicer
from tests.unit.gateway.fakes import FakeImages, FakeShim


@pytest.fixture
def served() -> Iterator[tuple[Engine, FakeShim, Client]]:
    tmp = Path(tempfile.mkdtemp(prefix="mugw-", dir="/tmp"))
    runtime = FakeShim()
    engine = Engine(Records(tmp / "state"), FakeImages(), runtime)
    server = grpc.server(futures.ThreadPoolExecutor(8), interceptors=[ErrorInterceptor()])
    engine_pb2_grpc.add_EngineServicer_to_server(EngineServicer(engine), server)
    server.add_insecure_port(f"unix:{tmp / 'gw.sock'}")
    server.start()
    client = Client(f"unix://{tmp / 'gw.sock'}")
    try:
        yield engine, runtime, client
    finally:
        client.close()
        server.stop(0).wait()
        engine.records.close()
        shutil.rmtree(tmp, ignore_errors=True)
