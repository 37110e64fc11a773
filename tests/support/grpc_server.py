"""A grpcio server of generic handlers on a unix socket in a fresh directory: a stand-in
peer for the clients' tests (the SDK's wire.py and transports)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from concurrent import futures
from pathlib import Path

import grpc


@contextlib.contextmanager
def serving(service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> Iterator[str]:
    """Serve ``handlers`` (method name -> handler) as ``service``; yields the address."""
    tmp = Path(tempfile.mkdtemp(prefix="grpc-", dir="/tmp"))
    srv = grpc.server(futures.ThreadPoolExecutor(4))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, dict(handlers)),))
    srv.add_insecure_port(f"unix:{tmp / 's.sock'}")
    srv.start()
    try:
        yield f"unix://{tmp / 's.sock'}"
    finally:
        srv.stop(0).wait()
        shutil.rmtree(tmp, ignore_errors=True)
