"""``muelle-dockerapi``: the Docker Engine API (v1.41) in front of muelle.engine.v1.

Listens on ``$MUELLE_RUN/docker.sock`` (``[dockerapi] socket``; mode 0660, owner root,
group ``[dockerapi] group``) and, when ``[dockerapi] tcp`` is set, on TCP: with mutual TLS
(``[tls]`` or ``[tls.dockerapi]``, Docker's ``--tlsverify``) and the identities
``[authz].dockerapi`` lists, or plain with ``insecure = true`` on loopback only
(services/core/tls.py decides, as for every gRPC listener). It is a client of the
gateway like any other: it keeps no state but exec instances.
In muelle-engine it runs in a thread of its own with its own event loop (``Background``).
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.core import config as configmod
from services.core import tls_streams
from services.core.logging import get_logger
from services.core.main import add_common_options, load_config
from services.core.server import reload_on_hangup
from services.core.tls import ListenerSecurity, listener_security
from services.dockerapi.app import build_router
from services.dockerapi.engine import Gateway
from services.dockerapi.http import Handler, Request, Responder, serve_connection
from vocab.errors import InvalidArgument, MuelleError

NAME = "dockerapi"


# Docker's ports: dockerd -H tcp://HOST listens on 2376 with --tlsverify, 2375 without.
TLS_PORT = 2376
PLAIN_PORT = 2375


def tcp_address(text: str, tls: bool = True) -> tuple[str, int]:
    """``host:port`` of ``[dockerapi] tcp`` (TLS or loopback is decided by listener());
    a host alone gets Docker's port: TLS_PORT, or PLAIN_PORT when not ``tls``."""
    rest = text.removeprefix("tcp://")
    if ":" not in rest or (rest.startswith("[") and rest.endswith("]")):
        host, port = rest, str(TLS_PORT if tls else PLAIN_PORT)
    else:
        host, _, port = rest.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"[dockerapi] tcp = {text!r}: want host:port")
    return host, int(port)


def listener(cfg: configmod.Config) -> tuple[str, int, ListenerSecurity]:
    """Where and how to listen on TCP: a clear refusal for plain TCP off loopback, for
    TCP without TLS material or ``insecure``, for TLS with an empty ``[authz]`` entry."""
    host, port = tcp_address(cfg.dockerapi.tcp, tls=not cfg.tls_files(NAME).insecure)
    address = f"tcp://{'[' + host + ']' if ':' in host else host}:{port}"
    return host, port, listener_security(NAME, address, cfg.tls_files(NAME),
                                         cfg.authz.get(NAME, ()))


def _admitted(handler: Handler, refusal: MuelleError | None) -> Handler:
    """The router for a connection whose certificate was admitted, or one that answers
    every request with the refusal (403 naming the identity, Docker-shaped)."""
    if refusal is None:
        return handler

    async def refuse(_req: Request, _out: Responder) -> None:
        raise refusal

    return refuse


def _own(path: Path, group: str) -> None:
    os.chmod(path, 0o660)
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise InvalidArgument(f"[dockerapi] group {group!r} does not exist") from None
        os.chown(path, 0, gid)


async def serve(cfg: configmod.Config, stop: asyncio.Event,
                ready: threading.Event | None = None) -> None:
    if cfg.dockerapi.tcp:
        host, port, security = listener(cfg)  # refused before anything is bound
    gateway = Gateway(cfg.address("gateway"), cfg.tls_files(NAME))
    router = build_router(gateway)

    async def on_connection(reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, router)

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peercert: dict[str, Any] | None = None) -> None:
        refusal = None
        try:
            security.admit(peercert)
        except MuelleError as exc:
            refusal = exc
        await serve_connection(reader, writer, _admitted(router, refusal))

    path = cfg.docker_socket()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    servers = [await asyncio.start_unix_server(on_connection, path=str(path))]
    try:
        _own(path, cfg.dockerapi.group)
        addresses = [f"unix://{path}"]
        if cfg.dockerapi.tcp:
            # TLS in tls_streams, not asyncio's: a hijacked docker run half-closes TCP.
            servers.append(
                await tls_streams.start_server(on_tcp, host, port, security.ssl)
                if security.ssl is not None else
                await asyncio.start_server(on_tcp, host, port))
            addresses.append(f"tcp://{host}:{port} ({security.mode})")
        get_logger(service=NAME).info("serving", addresses=addresses, pid=os.getpid())
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        path.unlink(missing_ok=True)
        await gateway.close()


class Background:
    """The Docker API on its own event loop in a thread (muelle-engine)."""

    name = NAME

    def __init__(self, cfg: configmod.Config) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(cfg,), name=NAME, daemon=True)
        self._thread.start()
        while not self._ready.wait(0.05):
            if not self._thread.is_alive():
                raise MuelleError(f"muelle-{NAME} failed to start: {self._error}")

    def _run(self, cfg: configmod.Config) -> None:
        try:
            self._loop.run_until_complete(serve(cfg, self._stop, self._ready))
        except BaseException as exc:  # noqa: BLE001 - reported by __init__ or stop
            self._error = exc

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"muelle-{NAME}", description=__doc__.split("\n")[0])
    add_common_options(parser)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args, NAME)
        if cfg.dockerapi.tcp:
            listener(cfg)  # refuse before binding anything
        asyncio.run(_main(cfg))
    except MuelleError as exc:
        print(f"muelle-{NAME}: {exc}", file=sys.stderr)
        sys.exit(1)


async def _main(cfg: configmod.Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_on_hangup)  # reread the TLS files
    await serve(cfg, stop)
    get_logger(service=NAME).info("stopped")


if __name__ == "__main__":
    main()
