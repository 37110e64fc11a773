"""How a client reaches a muelle address: gRPC targets, channel options, the TLS files of
one end and their channel credentials, and the channels themselves (mutual TLS over TCP,
plain to unix sockets and loopback, anything else refused).

Both sides use it: the SDK's grpcio transport, and the services' own connections
(services/core/client.py adds typed errors, readiness and the contract check on top).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from vocab.errors import InvalidArgument

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


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one end: the CA that signs peers, our certificate and key."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    # Plain TCP, allowed on loopback addresses only.
    insecure: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.ca and self.cert and self.key)

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> TlsFiles:
        """Docker's layout: ``ca.pem``, ``cert.pem``, ``key.pem`` in one directory."""
        d = Path(directory)
        return cls(str(d / "ca.pem"), str(d / "cert.pem"), str(d / "key.pem"))


def tcp_host(address: str) -> str | None:
    """The host of a TCP address (``tcp://h:p`` or ``h:p``), None for a unix socket."""
    if address.startswith(("unix:", "unix://")):
        return None
    hostport = address[len("tcp://"):] if address.startswith("tcp://") else address
    host = hostport.rpartition(":")[0] if ":" in hostport else hostport
    return host.strip("[]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_pem(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read TLS file {path}: {exc.strerror}") from None


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """Our certificate for the peer, and the CA its certificate must be signed by."""
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(files.ca), private_key=read_pem(files.key),
        certificate_chain=read_pem(files.cert))
