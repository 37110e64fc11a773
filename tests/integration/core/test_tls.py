"""Mutual TLS and authorization of a real gRPC listener (services/core/server.py, tls.py).

The server is the real bootstrap (``server.start``) on a loopback TCP port with a small
echo method; the callers are real grpc channels (``services.core.client``) holding
certificates from muelle-certs' code.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.certs import authority
from services.core import server
from services.core.tls import (
    Authorizer,
    identity_of_peercert,
    listen_mode,
    server_ssl_context,
)
from tests.support.pki import Pki
from tests.support.registry import free_port
from vocab import errors
from vocab.channel import TlsFiles, channel


class Echo:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls += 1
        return request

    def register(self, srv: grpc.Server) -> None:
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(self)}),))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def echo_server(pki: Pki) -> Iterator[tuple[str, Echo, TlsFiles]]:
    echo = Echo()
    files = pki.issue("shim-host-b", ips=["127.0.0.1"])
    address = f"tcp://127.0.0.1:{free_port()}"
    running = server.start("shim", address, echo.register, [], tls=files,
                           authz=["gateway-*"])
    yield address, echo, files
    running.stop(grace=0)


def _echo(address: str, tls: TlsFiles | None) -> bytes:
    with channel(address, tls) as ch:
        try:
            reply: bytes = ch.unary_unary("/test.Echo/Echo", None, None)(b"hi", timeout=10)
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err, "shim") from None
    return reply


def test_an_allowed_identity_is_served_and_logged(
        echo_server: tuple[str, Echo, TlsFiles], pki: Pki) -> None:
    address, echo, _ = echo_server
    with structlog.testing.capture_logs() as logs:
        assert _echo(address, pki.issue("gateway-b")) == b"hi"
    assert echo.calls == 1
    assert any(e.get("identity") == "gateway-b" and e.get("method") == "/test.Echo/Echo"
               for e in logs), logs


def test_an_identity_not_in_authz_is_refused_by_name(
        echo_server: tuple[str, Echo, TlsFiles], pki: Pki) -> None:
    address, echo, _ = echo_server
    with pytest.raises(errors.PermissionDenied, match="'client-d'.*shim"):
        _echo(address, pki.issue("client-d"))
    assert echo.calls == 0


@pytest.mark.parametrize("who", ["no client certificate", "another CA", "expired"])
def test_callers_without_a_valid_certificate_are_refused(
        echo_server: tuple[str, Echo, TlsFiles], pki: Pki, tmp_path: Path, who: str) -> None:
    address, echo, server_files = echo_server
    if who == "no client certificate":
        creds = grpc.ssl_channel_credentials(Path(server_files.ca).read_bytes())
        with grpc.secure_channel(address[len("tcp://"):], creds) as ch, \
                pytest.raises(grpc.RpcError) as info:
            ch.unary_unary("/test.Echo/Echo", None, None)(b"hi", timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    else:
        other = Pki(tmp_path, "other") if who == "another CA" else pki
        files = other.issue("gateway-b", expired=who == "expired")
        # Our CA so the server is trusted; the caller's own certificate is the bad part.
        files = TlsFiles(server_files.ca, files.cert, files.key)
        with pytest.raises(errors.Unavailable):
            _echo(address, files)
    assert echo.calls == 0


def test_health_answers_any_certificate_of_the_ca(
        echo_server: tuple[str, Echo, TlsFiles], pki: Pki) -> None:
    address, _, _ = echo_server
    with channel(address, pki.issue("client-d")) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                     timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_renewed_certificates_are_used_without_a_restart(
        echo_server: tuple[str, Echo, TlsFiles], pki: Pki, tmp_path: Path) -> None:
    """A new CA and server certificate written over the files: new connections use them."""
    address, echo, files = echo_server
    new = Pki(tmp_path, "new")
    caller = new.issue("gateway-b")
    with pytest.raises(errors.Unavailable):
        _echo(address, caller)
    renewed = new.issue("shim-host-b")
    for name in ("ca.pem", "cert.pem", "key.pem"):
        authority._write(Path(files.cert).parent / name,
                         (Path(renewed.cert).parent / name).read_bytes(), 0o600)
    assert _echo(address, caller) == b"hi"
    assert echo.calls == 1


def test_a_certificate_near_its_expiry_is_warned_about(pki: Pki) -> None:
    soon, later = pki.issue("shim-soon", days=10), pki.issue("shim-later", days=90)
    for files, warned in ((soon, True), (later, False)):
        with structlog.testing.capture_logs() as logs:
            running = server.start("shim", f"tcp://127.0.0.1:{free_port()}", lambda s: None,
                                   [], tls=files, authz=["gateway-*"])
            running.stop(grace=0)
        warnings = [e for e in logs if e.get("event") == "certificate expires soon"]
        assert bool(warnings) is warned, logs
        if warned:
            assert warnings[0]["cert"] == files.cert and warnings[0]["days_left"] in (9, 10)


def test_plain_tcp_is_refused_off_loopback_and_needs_saying_on_it(pki: Pki) -> None:
    with pytest.raises(errors.InvalidArgument, match="loopback only"):
        listen_mode("shim", "tcp://10.1.2.3:7403", TlsFiles(insecure=True))
    with pytest.raises(errors.InvalidArgument, match="without TLS"):
        server.start("shim", f"tcp://127.0.0.1:{free_port()}", lambda s: None, [])
    assert listen_mode("shim", "tcp://127.0.0.1:1", TlsFiles(insecure=True)) == "insecure"
    assert listen_mode("shim", "unix:///tmp/x.sock", TlsFiles()) == "unix"
    with pytest.raises(errors.MuelleError, match=r"\[authz\].shim is empty"):
        server.start("shim", f"tcp://127.0.0.1:{free_port()}", lambda s: None, [],
                     tls=pki.issue("shim"))
    with pytest.raises(errors.InvalidArgument, match="refusing plain TCP"):
        channel("tcp://10.1.2.3:7403", TlsFiles(insecure=True))
    with pytest.raises(errors.InvalidArgument, match="mutual TLS"):
        channel("tcp://10.1.2.3:7403")


def _handshake(ctx: ssl.SSLContext, authz: Authorizer, cafile: str,
               client: TlsFiles | None) -> str:
    """One TLS connection to a listener using ``ctx``; what the listener concluded."""
    seen: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve_one() -> None:
            conn, _ = listener.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    identity = identity_of_peercert(tls_conn.getpeercert())
                    try:
                        seen.append(f"ok {authz.check(identity)}")
                    except errors.PermissionDenied as exc:
                        seen.append(str(exc))
            except ssl.SSLError as exc:
                seen.append(f"handshake: {exc.reason}")

        thread = threading.Thread(target=serve_one)
        thread.start()
        context = ssl.create_default_context(cafile=cafile)
        if client:
            context.load_cert_chain(client.cert, client.key)
        try:
            with socket.create_connection(("127.0.0.1", port)) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as c:
                c.recv(1)  # the server's handshake ends (or refuses) before this
        except (ssl.SSLError, OSError):
            pass
        thread.join(10)
    return seen[-1] if seen else "nothing"


def test_the_ssl_context_helper_checks_client_certificates(pki: Pki, tmp_path: Path) -> None:
    """What a non-gRPC listener (the Docker API) plugs in: the same mTLS and authz, and
    renewed files used from the next handshake on."""
    files = pki.issue("dockerapi-b")
    ctx = server_ssl_context(files)
    authz = Authorizer("dockerapi", ["client-*"])
    cafile = files.ca
    assert _handshake(ctx, authz, cafile, pki.issue("client-d")) == "ok client-d"
    assert "'gateway-b' is not allowed" in _handshake(ctx, authz, cafile,
                                                      pki.issue("gateway-b"))
    assert _handshake(ctx, authz, cafile, None).startswith("handshake")
    new = Pki(tmp_path, "new")
    renewed = new.issue("dockerapi-b")
    for name in ("ca.pem", "cert.pem", "key.pem"):
        authority._write(Path(files.cert).parent / name,
                         (Path(renewed.cert).parent / name).read_bytes(), 0o600)
    assert _handshake(ctx, authz, renewed.ca, new.issue("client-d")) == "ok client-d"
    assert _handshake(ctx, authz, renewed.ca, pki.issue("client-e")).startswith("handshake")


def test_listener_security_decides_once_and_admits_by_identity(pki: Pki) -> None:
    from services.core.tls import listener_security
    files = pki.issue("dockerapi-b")
    sec = listener_security("dockerapi", "tcp://127.0.0.1:2376", files, ["client-*"])
    assert sec.mode == "tls" and sec.ssl is not None
    assert str(sec.admit({"subject": ((("commonName", "client-d"),),)})) == "client-d"
    with pytest.raises(errors.PermissionDenied, match="'mallory'"):
        sec.admit({"subject": ((("commonName", "mallory"),),)})
    with pytest.raises(errors.Unauthenticated):
        sec.admit(None)
    plain = listener_security("dockerapi", "tcp://127.0.0.1:2376", TlsFiles(insecure=True), [])
    assert (plain.mode, plain.ssl, plain.admit(None)) == ("insecure", None, None)
    with pytest.raises(errors.InvalidArgument, match="loopback only"):
        listener_security("dockerapi", "tcp://10.0.0.2:2376", TlsFiles(insecure=True), [])
    with pytest.raises(errors.InvalidArgument, match=r"\[authz\].dockerapi is empty"):
        listener_security("dockerapi", "tcp://10.0.0.2:2376", files, [])


def test_certs_command_writes_keys_private(tmp_path: Path) -> None:
    from clients.certs.main import run

    assert run(["ca", str(tmp_path / "ca")]) == 0
    assert run(["issue", str(tmp_path / "ca"), str(tmp_path / "gw"), "--name", "gateway-b",
                "--dns", "b.example", "--ip", "10.0.0.2", "--kind", "server"]) == 0
    for key in (tmp_path / "ca" / "ca-key.pem", tmp_path / "gw" / "key.pem"):
        assert key.stat().st_mode & 0o777 == 0o600
    info = authority.describe(tmp_path / "gw" / "cert.pem")
    assert (info.name, info.dns, info.ips, info.kind) == \
        ("gateway-b", ["gateway-b", "b.example"], ["10.0.0.2"], "server")
    before = (tmp_path / "gw" / "key.pem").read_bytes()
    assert run(["renew", str(tmp_path / "ca"), str(tmp_path / "gw")]) == 0
    assert (tmp_path / "gw" / "key.pem").read_bytes() != before
    assert authority.describe(tmp_path / "gw" / "cert.pem").dns == info.dns
    assert run(["ca", str(tmp_path / "ca")]) == 1  # never silently replaces a CA
    assert run(["issue", str(tmp_path / "none"), str(tmp_path / "x"), "--name", "x"]) == 1


def test_a_peer_serving_another_contract_version_is_refused_at_connect(
        tmp_path: Path) -> None:
    """Each service reports its contracts in the health service; a client that needs
    muelle.images.v1.Images of a peer serving only a v2 gets one clear error."""
    from muelle.images.v1 import images_pb2, images_pb2_grpc

    from services.core.client import connect
    sock = f"unix://{tmp_path}/peer.sock"
    running = server.start("imagestore", sock, lambda s: None, ["muelle.images.v2.Images"])
    try:
        stub = connect(sock, images_pb2_grpc.ImagesStub, "imagestore")
        with pytest.raises(errors.FailedPrecondition,
                           match="imagestore at .* does not serve muelle.images.v1.Images"):
            stub.List(images_pb2.ListImagesRequest())
    finally:
        running.stop(grace=0)
    running = server.start("imagestore", sock, lambda s: None, ["muelle.images.v1.Images"])
    try:  # the right version: the check passes, the call reaches the (empty) server
        stub = connect(sock, images_pb2_grpc.ImagesStub, "imagestore")
        with pytest.raises(errors.Unimplemented):
            stub.List(images_pb2.ListImagesRequest())
    finally:
        running.stop(grace=0)


def test_a_renewed_client_certificate_is_used_without_a_restart(pki: Pki) -> None:
    """A service's own certificate renewed under it: its next calls to a neighbour
    present the new one (here: a new identity, seen in the neighbour's log)."""
    from muelle.registry.v1 import registry_pb2, registry_pb2_grpc

    from services.core.client import _Connection, connect
    def register(srv: grpc.Server) -> None:  # answers ParseReference with an empty reply
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "muelle.registry.v1.Registry",
            {"ParseReference": grpc.unary_unary_rpc_method_handler(lambda r, c: b"")}),))

    address = f"tcp://127.0.0.1:{free_port()}"
    running = server.start("registry", address, register, ["muelle.registry.v1.Registry"],
                           tls=pki.issue("registry-a"), authz=["imagestore-*"])
    mine = pki.issue("imagestore-old")
    stub = connect(address, registry_pb2_grpc.RegistryStub, "registry", mine)

    def caller() -> str:
        with structlog.testing.capture_logs() as logs:
            stub.ParseReference(registry_pb2.ParseReferenceRequest(reference="x"))
        return next(e["identity"] for e in logs if e.get("event") == "call")

    try:
        assert caller() == "imagestore-old"
        renewed = pki.issue("imagestore-new")
        for name in ("cert.pem", "key.pem"):
            authority._write(Path(mine.cert).parent / name,
                             (Path(renewed.cert).parent / name).read_bytes(), 0o600)
        _Connection.RECHECK = 0.0  # not a second later: at once
        assert caller() == "imagestore-new"
    finally:
        _Connection.RECHECK = 1.0
        running.stop(grace=0)


def test_asyncio_callers_get_the_same_mutual_tls(
        echo_server: tuple[str, Echo, TlsFiles], pki: Pki) -> None:
    """aio_channel: what the Docker API uses to reach a gateway on TCP."""
    import asyncio

    from vocab.channel import aio_channel
    address, echo, _ = echo_server

    async def call(files: TlsFiles) -> bytes:
        async with aio_channel(address, files) as ch:
            reply: bytes = await ch.unary_unary("/test.Echo/Echo", None, None)(
                b"hi", timeout=10)
            return reply

    assert asyncio.run(call(pki.issue("gateway-dockerapi"))) == b"hi"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        asyncio.run(call(pki.issue("client-d")))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'client-d'" in (info.value.details() or "")
    assert echo.calls == 1
