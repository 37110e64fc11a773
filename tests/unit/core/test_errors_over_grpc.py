"""Typed errors cross a real gRPC hop as status codes and come back as the same type."""

from __future__ import annotations

import errno
import sqlite3
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from muelle.registry.v1 import registry_pb2, registry_pb2_grpc

from services.core.client import connect
from services.core.server import ErrorInterceptor
from vocab import errors


class Failing(registry_pb2_grpc.RegistryServicer):
    def ParseReference(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        if request.reference == "boom":
            raise RuntimeError("secret internals")
        if request.reference == "full":
            raise OSError(errno.ENOSPC, "No space left on device", "/var/lib/muelle/x.json")
        if request.reference == "fulldb":
            raise sqlite3.OperationalError("database or disk is full")
        if request.reference == "far":
            raise errors.Unavailable("cannot reach registry far.example: no such host")
        raise errors.NotFound(f"no such thing: {request.reference}")

    def FetchBlob(self, request, context) -> Iterator[registry_pb2.BlobChunk]:  # type: ignore[no-untyped-def]  # noqa: N802,E501
        yield registry_pb2.BlobChunk(data=b"abc")
        raise errors.DataLoss("digest mismatch")


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[registry_pb2_grpc.RegistryStub]:
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[ErrorInterceptor()])
    registry_pb2_grpc.add_RegistryServicer_to_server(Failing(), server)  # type: ignore[abstract]
    sock = tmp_path / "s.sock"
    server.add_insecure_port(f"unix:{sock}")
    server.start()
    yield connect(f"unix://{sock}", registry_pb2_grpc.RegistryStub, "registry")
    server.stop(0)
    threading.Event().wait(0)


def test_unary_error_is_typed(stub: registry_pb2_grpc.RegistryStub) -> None:
    with pytest.raises(errors.NotFound, match="no such thing: x"):
        stub.ParseReference(registry_pb2.ParseReferenceRequest(reference="x"))


def test_unexpected_exception_is_internal_without_traceback(
    stub: registry_pb2_grpc.RegistryStub,
) -> None:
    with pytest.raises(errors.Internal) as info:
        stub.ParseReference(registry_pb2.ParseReferenceRequest(reference="boom"))
    assert "Traceback" not in str(info.value)


def test_stream_error_is_typed(stub: registry_pb2_grpc.RegistryStub) -> None:
    chunks = []
    with pytest.raises(errors.DataLoss):
        for chunk in stub.FetchBlob(registry_pb2.FetchBlobRequest()):
            chunks.append(chunk.data)
    assert chunks == [b"abc"]


@pytest.mark.parametrize(("ref", "what"), [("full", "/var/lib/muelle/x.json"),
                                           ("fulldb", "the database (ParseReference)")])
def test_full_disk_is_resource_exhausted_and_says_what(
    stub: registry_pb2_grpc.RegistryStub, ref: str, what: str,
) -> None:
    with pytest.raises(errors.ResourceExhausted) as info:
        stub.ParseReference(registry_pb2.ParseReferenceRequest(reference=ref))
    assert str(info.value).startswith("no space left on device: could not write ")
    assert what in str(info.value)
    assert "internal error" not in str(info.value)


def test_an_unavailable_the_service_raised_keeps_its_words(
    stub: registry_pb2_grpc.RegistryStub,
) -> None:
    """Not "registry unavailable: cannot reach registry ...": the service answered."""
    with pytest.raises(errors.Unavailable) as info:
        stub.ParseReference(registry_pb2.ParseReferenceRequest(reference="far"))
    assert str(info.value) == "cannot reach registry far.example: no such host"


def test_a_service_that_does_not_answer_is_named(tmp_path: Path) -> None:
    down = connect(f"unix://{tmp_path / 'none.sock'}", registry_pb2_grpc.RegistryStub,
                   "registry")
    with pytest.raises(errors.Unavailable, match="^registry unavailable: "):
        down.ParseReference(registry_pb2.ParseReferenceRequest(reference="x"), timeout=5)
