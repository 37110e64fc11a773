"""Version negotiation (muelle.version.v1, services/core/versioning.py) between real
processes and real gRPC servers.

The "other release" is a real server started by the real bootstrap (``server.start``)
whose ``register`` adds other contracts than this release's (``muelle.runtime.v0``,
``muelle.engine.v2``), as a muelle of another release would: what it reports is what it
registered, so the refusals below are what a caller of a real mismatched peer sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from muelle.images.v1 import images_pb2, images_pb2_grpc

from clients.sdk.client import Client
from services.core import server
from services.core.client import Contract, connect
from services.gateway.main import PEERS
from tests.support.pki import Pki
from tests.support.registry import free_port
from vocab import errors, versioning
from vocab.channel import channel
from vocab.version import VERSION

CLI = str(Path(sys.executable).parent / "muelle")


class Served:
    """Handlers for ``contract``'s methods (each answers an empty reply, counted)."""

    def __init__(self, contract: str, methods: tuple[str, ...] = ("Any",)) -> None:
        self.contract = contract
        self.methods = methods
        self.calls = 0

    def _answer(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls += 1
        return b""

    def register(self, srv: grpc.Server) -> None:
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            self.contract, {m: grpc.unary_unary_rpc_method_handler(self._answer)
                            for m in self.methods}),))


@pytest.fixture
def started() -> Iterator[list[server.Running]]:
    running: list[server.Running] = []
    yield running
    for r in running:
        r.stop(grace=0)


def _contract(stub: type) -> str:
    found = Contract.of(stub, "", "")
    assert found is not None
    return found.name


def test_every_server_reports_what_it_registered(tmp_path: Path,
                                                 started: list[server.Running]) -> None:
    """The list is the services ``register`` added (not the names the factory passes),
    plus the shared ones; the health check knows each by name too."""
    sock = f"unix://{tmp_path}/s.sock"

    def register(srv: grpc.Server) -> None:
        Served("muelle.images.v1.Images").register(srv)
        Served("test.Extra.v3").register(srv)

    started.append(server.start("imagestore", sock, register, []))
    with channel(sock) as ch:
        reply = versioning.ask(ch)
        assert reply.component == "imagestore"
        assert reply.version == VERSION
        assert list(reply.services) == sorted([
            "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
            "muelle.images.v1.Images", "muelle.version.v1.Version", "test.Extra.v3"])
        health = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="test.Extra.v3"), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_peer_lacking_the_contract_is_refused_at_connect(
        tmp_path: Path, started: list[server.Running]) -> None:
    """The client needs muelle.images.v1.Images; the peer serves only a v0: one clear
    error naming both, and the peer's method is never called."""
    sock = f"unix://{tmp_path}/s.sock"
    old = Served("muelle.images.v0.Images", ("List",))
    started.append(server.start("imagestore", sock, old.register, []))
    stub = connect(sock, images_pb2_grpc.ImagesStub, "imagestore", caller="gateway")
    with pytest.raises(errors.FailedPrecondition) as err:
        stub.List(images_pb2.ListImagesRequest())
    assert str(err.value) == (
        f"imagestore at {sock} (muelle {VERSION}) does not serve muelle.images.v1.Images, "
        f"which gateway needs; it serves muelle.images.v0.Images: run matching muelle "
        f"releases")
    assert old.calls == 0


def test_version_answers_any_caller_of_the_ca_but_calls_stay_guarded(
        tmp_path: Path, started: list[server.Running]) -> None:
    """Over mutual TLS an identity not in [authz] still learns what the peer serves
    (the Version service is open, as health), so the connect check works; its calls
    are refused by name as before."""
    pki = Pki(tmp_path)
    address = f"tcp://127.0.0.1:{free_port()}"
    images = Served("muelle.images.v1.Images", ("List",))
    started.append(server.start("imagestore", address, images.register, [],
                                tls=pki.issue("imagestore-a", ips=["127.0.0.1"]),
                                authz=["gateway-*"]))
    mallory = pki.issue("mallory", ips=[], kind="client")
    with channel(address, mallory) as ch:
        assert "muelle.images.v1.Images" in versioning.ask(ch).services
    stub = connect(address, images_pb2_grpc.ImagesStub, "imagestore", mallory)
    with pytest.raises(errors.PermissionDenied, match="'mallory' is not allowed"):
        stub.List(images_pb2.ListImagesRequest())
    assert images.calls == 0


def test_the_gateway_refuses_to_start_against_a_shim_without_its_contract(
        tmp_path: Path, started: list[server.Running]) -> None:
    """A real gateway process whose shim is of another release (it serves a v0 of the
    shim contract): the gateway stops at start with one line naming the shim, the
    contract it needs and what the shim serves. The neighbours' contract names come
    from the gateway's own stubs, so a renamed contract needs no change here."""
    needs = {name: _contract(stub) for name, stub in PEERS.items()}
    package, _, service = needs["shim"].rpartition(".")
    old_shim = f"{package.rpartition('.')[0]}.v0.{service}"
    sockets = {name: f"unix://{tmp_path}/{name}.sock" for name in PEERS}
    for name, contract in needs.items():
        served = Served(old_shim if name == "shim" else contract)
        started.append(server.start(name, sockets[name], served.register, []))
    config = tmp_path / "muelle.toml"
    config.write_text(f'root = "{tmp_path / "root"}"\nrun = "{tmp_path / "run"}"\n'
                      "[addresses]\n"
                      + "".join(f'{n} = "{a}"\n' for n, a in sockets.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUELLE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "services.gateway.main", "--config", str(config),
         "--address", f"unix://{tmp_path}/gateway.sock"],
        capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1, proc
    assert proc.stderr.strip().splitlines()[-1] == (
        f"muelle-gateway: shim at {sockets['shim']} (muelle {VERSION}) does not serve "
        f"{needs['shim']}, which gateway needs; it serves {old_shim}: run matching "
        f"muelle releases"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "gateway.sock").exists()


@pytest.fixture
def newer_gateway(tmp_path: Path, started: list[server.Running]) -> str:
    """A gateway of a later release: it serves muelle.engine.v2.Engine only."""
    sock = f"unix://{tmp_path}/gateway.sock"
    started.append(server.start("gateway", sock,
                                Served("muelle.engine.v2.Engine", ("Version",)).register,
                                []))
    return sock


def _cli(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUELLE_", "DOCKER_"))}
    env["MUELLE_HOST"] = host
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_the_cli_and_sdk_name_the_contract_a_newer_gateway_lacks(newer_gateway: str) -> None:
    expected = (f"the gateway at {newer_gateway} (muelle {VERSION}) does not serve "
                f"muelle.engine.v1.Engine, which this client needs; it serves "
                f"muelle.engine.v2.Engine: run matching muelle releases")
    for args in (("ps",), ("pull", "busybox")):  # a unary call and a stream
        proc = _cli(newer_gateway, *args)
        assert proc.returncode != 0, proc
        assert expected in proc.stderr, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    for lean in (True, False):  # the CLI's HTTP/2 client and grpcio
        with Client(newer_gateway, environ={}, lean=lean) as client:
            with pytest.raises(errors.FailedPrecondition) as err:
                client.containers()
            assert str(err.value) == expected
            with pytest.raises(errors.FailedPrecondition) as err:
                list(client.pull("busybox"))
            assert str(err.value) == expected


def test_an_older_gateway_without_a_call_is_named(tmp_path: Path,
                                                  started: list[server.Running]) -> None:
    """A gateway serving muelle.engine.v1.Engine without a call this client makes."""
    sock = f"unix://{tmp_path}/gateway.sock"
    started.append(server.start("gateway", sock,
                                Served("muelle.engine.v1.Engine", ("Version",)).register,
                                []))
    proc = _cli(sock, "ps")
    assert proc.returncode != 0
    assert (f"the gateway at {sock} (muelle {VERSION}) serves muelle.engine.v1.Engine "
            f"without ListContainers, which this client (muelle {VERSION}) needs: an older "
            f"release; upgrade the engine") in proc.stderr, proc.stderr
