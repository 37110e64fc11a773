"""TLS across hosts: which listeners may be plain, credentials, caller identities, authz.

A ``tcp://`` listener serves mutual TLS: the server presents its certificate, the caller
must present one signed by the configured CA, and the caller's identity (certificate CN
and DNS SANs) must be allowed for the service by the ``[authz]`` table. Plain TCP only with
``insecure = true`` and only on a loopback address; unix sockets are unchanged (file
permissions guard them).

The gRPC services use ``server_credentials`` / ``channel_credentials`` and
``AuthzInterceptor`` (services/core/server.py); a non-gRPC listener (the Docker API) uses
``server_ssl_context``, ``identity_of_peercert`` and ``Authorizer`` the same way.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from services.core.logging import get_logger
from vocab.channel import TlsFiles, is_loopback, read_pem, tcp_host
from vocab.errors import InvalidArgument, PermissionDenied, Unauthenticated

# A certificate that expires within this many days is logged as a warning at start and
# at each reload, so an operator renews it before callers are refused.
EXPIRY_WARNING_DAYS = 30
# Health checks and the Version service answer any caller that passed the TLS handshake
# (a CA-signed certificate): load balancers and launchers probe with whatever identity
# they have, and a caller learns which contracts a peer serves before its calls (refused
# or not) are made.
UNAUTHORIZED_METHODS = ("/grpc.health.v1.Health/", "/muelle.version.v1.Version/")


def listen_mode(service: str, address: str, files: TlsFiles) -> str:
    """"unix", "insecure" or "tls" for a listener of ``service`` on ``address``; refuses
    (InvalidArgument, one clear line) a TCP listener that would be plain off loopback or
    that has no TLS material."""
    host = tcp_host(address)
    if host is None:
        return "unix"
    if files.insecure:
        if not is_loopback(host):
            raise InvalidArgument(
                f"{service}: refusing plain TCP on {address}: insecure = true is allowed on "
                f"loopback only; configure [tls] ca, cert and key for other addresses")
        return "insecure"
    if not files.configured:
        raise InvalidArgument(
            f"{service}: refusing to listen on {address} without TLS: configure [tls] "
            f"(or [tls.{service}]) ca, cert and key, or insecure = true on loopback")
    for path in (files.ca, files.cert, files.key):
        if not Path(path).is_file():
            raise InvalidArgument(f"{service}: TLS file {path} does not exist")
    return "tls"


def not_after(cert_pem: bytes) -> datetime.datetime:
    """When a PEM certificate expires (UTC)."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def warn_if_expiring(cert_path: str, service: str) -> None:
    """Log a warning when the certificate expires within EXPIRY_WARNING_DAYS."""
    try:
        expires = not_after(read_pem(cert_path))
    except ValueError as exc:
        raise InvalidArgument(f"{service}: {cert_path} is not a PEM certificate: {exc}") \
            from None
    left = expires - datetime.datetime.now(datetime.UTC)
    if left < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        get_logger(service=service).warning(
            "certificate expires soon" if left.total_seconds() > 0 else "certificate expired",
            cert=cert_path, not_after=expires.isoformat(), days_left=left.days)


# Bumped by SIGHUP (request_reload): every reader of TLS files rereads them at its next
# handshake or call even when their stamps did not change (files copied with their old
# mtime and size, e.g. rsync -t of a renewal made on another machine).
_reloads = [0]


def request_reload() -> None:
    """Make every server and client reread its TLS files at the next handshake or call
    (SIGHUP; a signal handler may call it: it only bumps a counter)."""
    _reloads[0] += 1


def stamps(files: TlsFiles) -> tuple[tuple[int, int], ...]:
    """(mtime, size) of the three files, and the reload requests so far: what tells a
    renewal (a missing file: zeros)."""
    out = [(_reloads[0], 0)]
    for path in (files.ca, files.cert, files.key):
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((0, 0))
    return tuple(out)


class _Reloading:
    """The server's certificate configuration, reread when one of its files changes.

    grpc asks before every handshake (dynamic credentials), so a renewed certificate or
    CA takes effect for new connections without a restart; a half-written or broken file
    keeps the previous configuration (logged), never leaves the listener without one."""

    def __init__(self, service: str, files: TlsFiles) -> None:
        self.service = service
        self.files = files
        self._stamp = self._stat()
        self.initial = self._load()

    def _stat(self) -> tuple[tuple[int, int], ...]:
        return stamps(self.files)

    def _load(self) -> Any:
        warn_if_expiring(self.files.cert, self.service)
        return grpc.ssl_server_certificate_configuration(
            [(read_pem(self.files.key), read_pem(self.files.cert))],
            root_certificates=read_pem(self.files.ca))

    def __call__(self) -> Any:
        stamp = self._stat()
        if stamp == self._stamp:
            return None  # unchanged: grpc keeps the current configuration
        self._stamp = stamp
        try:
            config = self._load()
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the listener
            get_logger(service=self.service).error("TLS reload failed; keeping the "
                                                   "previous certificates", error=str(exc))
            return None
        get_logger(service=self.service).info("TLS certificates reloaded",
                                              cert=self.files.cert)
        return config


def server_credentials(service: str, files: TlsFiles) -> grpc.ServerCredentials:
    """Mutual TLS: callers must present a certificate signed by ``files.ca``."""
    reloading = _Reloading(service, files)
    return grpc.dynamic_ssl_server_credentials(
        reloading.initial, reloading, require_client_authentication=True)


def _ssl_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(files.cert, files.key)
        ctx.load_verify_locations(files.ca)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"cannot load TLS files {files.cert}, {files.key}, "
                              f"{files.ca}: {exc}") from None
    return ctx


def server_ssl_context(files: TlsFiles, service: str = "dockerapi") -> ssl.SSLContext:
    """The same mutual TLS for a listener that is not gRPC (the Docker API on 2376):
    TLS 1.2 or later, a client certificate signed by ``files.ca`` required. Renewed
    files are used from the next handshake on, as by the gRPC services: OpenSSL asks the
    servername callback at every ClientHello, which swaps in a context loaded afresh
    when a file changed (a broken file keeps the previous one, logged)."""
    warn_if_expiring(files.cert, service)
    ctx = _ssl_context(files)
    stamp = [stamps(files)]
    current = [ctx]

    def reload(sslobj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        now = stamps(files)
        if now != stamp[0]:
            stamp[0] = now
            try:
                current[0] = _ssl_context(files)
                warn_if_expiring(files.cert, service)
                get_logger(service=service).info("TLS certificates reloaded",
                                                 cert=files.cert)
            except InvalidArgument as exc:
                get_logger(service=service).error("TLS reload failed; keeping the "
                                                  "previous certificates", error=str(exc))
        if current[0] is not ctx:
            sslobj.context = current[0]

    ctx.sni_callback = reload
    return ctx


@dataclass(frozen=True)
class Identity:
    """Who called: the certificate's CN (``name``) and every name it holds (CN, DNS SANs)."""

    name: str
    names: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


def identity_of(context: grpc.ServicerContext) -> Identity | None:
    """The caller's verified certificate identity, None on a plain connection."""
    auth: Mapping[str, Any] = context.auth_context()  # grpc-stubs types it loosely
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    cn = [v.decode(errors="replace") for v in auth.get("x509_common_name", [])]
    sans = [v.decode(errors="replace") for v in auth.get("x509_subject_alternative_name", [])]
    names = tuple(dict.fromkeys(cn + sans))
    if not names:
        return Identity("(certificate without a name)", ())
    return Identity(names[0], names)


def identity_of_peercert(peercert: Mapping[str, Any] | None) -> Identity | None:
    """The identity of ``ssl.SSLSocket.getpeercert()`` (a verified peer), as above."""
    if not peercert:
        return None
    cn = [value for rdn in peercert.get("subject", ()) for key, value in rdn
          if key == "commonName"]
    sans = [value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"]
    names = tuple(dict.fromkeys([*cn, *sans]))
    return Identity(names[0], names) if names else Identity("(certificate without a name)", ())


class Authorizer:
    """Which identities may call ``service``: shell-style patterns from ``[authz]``
    (``"gateway-*"``); no entry means nobody."""

    def __init__(self, service: str, patterns: Sequence[str]) -> None:
        self.service = service
        self.patterns = tuple(patterns)

    def allows(self, identity: Identity) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern)
                   for name in identity.names for pattern in self.patterns)

    def check(self, identity: Identity | None) -> Identity:
        if identity is None:
            raise Unauthenticated(f"{self.service} requires a client certificate")
        if not self.allows(identity):
            raise PermissionDenied(
                f"identity {identity.name!r} is not allowed to call {self.service} "
                f"(see [authz].{self.service})")
        return identity


def _guarded(fn: Callable[..., Any], method: str, authorizer: Authorizer,
             streaming: bool) -> Callable[..., Any]:
    log = get_logger(service=authorizer.service)
    exempt = method.startswith(UNAUTHORIZED_METHODS)

    def admit(context: grpc.ServicerContext) -> None:
        identity = identity_of(context)
        if exempt:
            return
        try:
            authorizer.check(identity)
        except (PermissionDenied, Unauthenticated):
            log.warning("call refused", method=method, identity=str(identity or "-"),
                        peer=context.peer())
            raise
        log.info("call", method=method, identity=str(identity), peer=context.peer())

    if streaming:
        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            admit(context)
            yield from fn(request, context)

        return stream

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        admit(context)
        return fn(request, context)

    return unary


# grpc-stubs make ServerInterceptor generic (request, response); grpc's class is not
# subscriptable at run time. Our interceptors pass any message through.
if TYPE_CHECKING:
    ServerInterceptor = grpc.ServerInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.ServerInterceptor


class AuthzInterceptor(ServerInterceptor):
    """Checks every call's certificate identity against the service's [authz] entry and
    logs it; a refusal is PermissionDenied naming the identity (mapped at the edge)."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        for kind, make, streaming in (
                ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
                ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
                ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
                ("stream_stream", grpc.stream_stream_rpc_method_handler, True)):
            fn = getattr(handler, kind)
            if fn:
                return make(_guarded(fn, method, self.authorizer, streaming),
                            handler.request_deserializer, handler.response_serializer)
        return handler


@dataclass(frozen=True)
class ListenerSecurity:
    """What a non-gRPC TCP listener (the Docker API on 2376) needs, decided once at start:

        sec = listener_security("dockerapi", "tcp://0.0.0.0:2376",
                                cfg.tls_files("dockerapi"), cfg.authz.get("dockerapi", ()))
        await asyncio.start_server(on_connection, host, port, ssl=sec.ssl)
        # per connection, before serving it:
        identity = sec.admit(writer.get_extra_info("peercert"))  # PermissionDenied: refuse

    ``ssl`` is None for a unix socket or an insecure loopback address (``admit`` then
    lets everyone in: file permissions or loopback guard those)."""

    service: str
    mode: str
    ssl: ssl.SSLContext | None
    authorizer: Authorizer | None

    def admit(self, peercert: Mapping[str, Any] | None) -> Identity | None:
        """The caller's identity, logged; PermissionDenied (naming it) when [authz] does
        not list it."""
        if self.authorizer is None:
            return None
        identity = identity_of_peercert(peercert)
        try:
            self.authorizer.check(identity)
        except (PermissionDenied, Unauthenticated):
            get_logger(service=self.service).warning("connection refused",
                                                     identity=str(identity or "-"))
            raise
        get_logger(service=self.service).info("connection", identity=str(identity))
        return identity


def listener_security(service: str, address: str, files: TlsFiles,
                      authz: Sequence[str]) -> ListenerSecurity:
    """The TLS context and authorizer of ``service`` listening on ``address``, or a clear
    refusal (plain TCP off loopback, no TLS material, an empty [authz] entry)."""
    mode = listen_mode(service, address, files)
    if mode != "tls":
        return ListenerSecurity(service, mode, None, None)
    if not authz:
        raise InvalidArgument(f"{service}: [authz].{service} is empty, so no certificate "
                              f"identity could call it on {address}; list the identities "
                              f"allowed")
    return ListenerSecurity(service, mode, server_ssl_context(files, service),
                            Authorizer(service, authz))
