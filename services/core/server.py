"""gRPC server bootstrap shared by every service.

Each service registers its servicer; this module adds health checking and reflection,
maps typed errors to status codes in one place, binds the socket and handles SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.core.logging import get_logger
from services.core.tls import (
    Authorizer,
    AuthzInterceptor,
    ServerInterceptor,
    listen_mode,
    request_reload,
    server_credentials,
)
from vocab.channel import GRPC_OPTIONS, KEEPALIVE_TIME_MS, TlsFiles
from vocab.errors import ANSWERED, MuelleError, is_no_space, no_space
from vocab.versioning import Recording, add_version_service, version_service_name

# Clients over TCP ping every KEEPALIVE_TIME_MS during a call (client.TCP_OPTIONS), also
# while a stream carries no data (a Wait, a quiet log follow): gRPC's defaults would call
# that abuse (one ping per 5 min without data, then GOAWAY) and end those calls.
SERVER_OPTIONS = [
    ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS - 1000),
    ("grpc.http2.max_ping_strikes", 0),
]


def _abort(context: grpc.ServicerContext, exc: BaseException, method: str,
           service: str = "") -> None:
    if isinstance(exc, MuelleError):
        # Says the service answered: an UNAVAILABLE it raises (a registry it could not
        # reach) is not the service being unavailable (errors.from_rpc_error).
        context.set_trailing_metadata(((ANSWERED, exc.code.name.lower()),))
        context.abort(exc.code, exc.message)
    if is_no_space(exc):  # a full disk is the operator's to fix, not a bug: say where
        error = no_space(_what(exc, method, service), exc)
        get_logger(method=method).warning("disk full", error=str(exc))
        context.set_trailing_metadata(((ANSWERED, error.code.name.lower()),))
        context.abort(error.code, error.message)
    get_logger(method=method).exception("unexpected error")
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")


def _what(exc: BaseException, method: str, service: str) -> str:
    """What a write that hit a full disk was writing, as well as the edge can tell: the
    file the OSError names, else the call's data (core code names it better where it
    can, with errors.no_space)."""
    call = method.rsplit("/", 1)[-1] or method
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename} ({call})"
    if isinstance(exc, OSError):
        return f"the data of {call}"
    return f"the {service}'s database ({call})" if service else f"the database ({call})"


def _wrap_unary(fn: Callable[..., Any], method: str, service: str,
                uploads: bool = False) -> Callable[..., Any]:
    """``uploads``: ``request`` is a client stream (an archive, a tar), read to its end
    before a refusal goes out: a status sent while the client still writes reaches it as
    grpc's "Internal error from Core" instead (its write fails first), not as this one."""
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(request, context)
        except Exception as exc:  # noqa: BLE001 - this is the edge
            if _is_abort(exc):
                raise
            if uploads:
                drain(request)
            _abort(context, exc, method, service)

    return call


def drain(requests: Iterator[Any]) -> None:
    """Read what a client still sends, dropping it; a cancelled call just ends it."""
    try:
        for _ in requests:
            pass
    except Exception:  # noqa: BLE001 - the client went away: nothing left to read
        return


def _wrap_stream(fn: Callable[..., Iterator[Any]], method: str,
                 service: str) -> Callable[..., Iterator[Any]]:
    def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from fn(request, context)
        except Exception as exc:  # noqa: BLE001 - this is the edge
            if _is_abort(exc):
                raise
            _abort(context, exc, method, service)

    return call


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises a bare Exception subclass private to grpc; let it through.
    return type(exc).__module__.startswith("grpc")


class ErrorInterceptor(ServerInterceptor):
    """Turns MuelleError into its status code and anything else into INTERNAL.
    ``service`` names this server in what a full disk kept it from writing."""

    def __init__(self, service: str = "") -> None:
        self.service = service

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method, self.service),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method, self.service),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method, self.service, uploads=True),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream(handler.stream_stream, method, self.service),
            handler.request_deserializer,
            handler.response_serializer,
        )


def bind_address(address: str) -> str:
    """Turn a muelle address (unix:///path, tcp://host:port, host:port) into a bind target."""
    if address.startswith("unix://"):
        path = Path(address[len("unix://") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        return f"unix:{path}"
    if address.startswith("tcp://"):
        return address[len("tcp://") :]
    return address


def check_listener(name: str, address: str, tls: TlsFiles, authz: Sequence[str]) -> str:
    """How ``name`` may listen on ``address`` ("unix", "insecure", "tls"), or a clear
    refusal: services call it before their (maybe slow) start, then start() again."""
    mode = listen_mode(name, address, tls)
    if mode == "tls" and not authz:
        raise MuelleError(f"{name}: [authz].{name} is empty, so no certificate identity "
                          f"could call it on {address}; list the identities allowed")
    return mode


class Running:
    """A started server with its health service; ``stop()`` drains it, then on_stop."""

    def __init__(self, name: str, server: grpc.Server, health_servicer: Any,
                 on_stop: Callable[[], None] | None) -> None:
        self.name = name
        self.server = server
        self.health = health_servicer
        self.on_stop = on_stop

    def stop(self, grace: float = 2.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace=grace).wait()
        if self.on_stop:
            self.on_stop()


# Worker threads per gRPC server. Threads are made on demand, so a large pool costs
# nothing idle; it must be large because a sync server's long calls (logs -f, attach,
# wait, events) each hold one for as long as the client likes (gateway/longcalls.py).
MAX_WORKERS = 1024


def start(
    name: str,
    address: str,
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    on_stop: Callable[[], None] | None = None,
    max_workers: int = MAX_WORKERS,
    tls: TlsFiles | None = None,
    authz: Sequence[str] = (),
) -> Running:
    """Start a gRPC server for ``name`` on ``address``: the servicer, health, reflection.

    A TCP address serves mutual TLS with ``tls`` and lets in the identities ``authz``
    names (services/core/tls.py); plain TCP only when ``tls.insecure``, on loopback."""
    log = get_logger(address=address)
    tls = tls or TlsFiles()
    mode = check_listener(name, address, tls, authz)
    interceptors: list[ServerInterceptor] = [ErrorInterceptor(name)]
    if mode == "tls":
        # Inside the error interceptor, whose edge maps its PermissionDenied.
        interceptors.append(AuthzInterceptor(Authorizer(name, authz)))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name),
        interceptors=interceptors,
        options=GRPC_OPTIONS + SERVER_OPTIONS,
    )
    # The contracts served are what ``register`` adds, not a list kept beside it: the
    # Version service and the health check report exactly what callers can call.
    recording = Recording(server)
    register(recording)  # type: ignore[arg-type]  # a grpc.Server in all it is asked
    # ``service_names`` adds what a handler that does not name itself serves (generated
    # servicers all name themselves).
    contracts = list(dict.fromkeys((*recording.names, *service_names)))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for svc in ("", *contracts):
        health_servicer.set(svc, health_pb2.HealthCheckResponse.SERVING)
    shared = (version_service_name(), health.SERVICE_NAME, reflection.SERVICE_NAME)
    add_version_service(server, name, (*contracts, *shared))
    reflection.enable_server_reflection((*contracts, *shared), server)
    target = bind_address(address)
    if mode == "tls":
        port = server.add_secure_port(target, server_credentials(name, tls))
    else:
        port = server.add_insecure_port(target)
    if port == 0 and not target.startswith("unix:"):
        raise MuelleError(f"cannot listen on {address}")
    if target.startswith("unix:"):
        os.chmod(target[len("unix:") :], 0o660)
    server.start()
    log.info("serving", service=name, pid=os.getpid(), transport=mode)
    return Running(name, server, health_servicer, on_stop)


def stop_signals() -> threading.Event:
    """An event that SIGTERM or SIGINT sets (from now on: install it before slow starts).
    SIGHUP rereads the TLS files (as daemons do; its default would end the service)."""
    stopped = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        get_logger().info("stopping", signal=signal.Signals(signum).name)
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, reload_on_hangup)
    return stopped


def reload_on_hangup(_signum: int = signal.SIGHUP, _frame: Any = None) -> None:
    request_reload()
    get_logger().info("SIGHUP: TLS files are reread at the next handshake and call")


def serve(
    name: str,
    address: str,
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    on_stop: Callable[[], None] | None = None,
    max_workers: int = MAX_WORKERS,
    tls: TlsFiles | None = None,
    authz: Sequence[str] = (),
) -> None:
    """Run a gRPC server for ``name`` on ``address`` until SIGTERM/SIGINT."""
    stopping = stop_signals()
    running = start(name, address, register, service_names, on_stop, max_workers, tls, authz)
    stopping.wait()
    running.stop()
    get_logger(address=address).info("stopped")
