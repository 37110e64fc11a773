"""The SDK's two transports (clients/sdk/transport.py) against one real grpcio server
standing in for the gateway: the same calls give the same answers and the same typed
errors over grpcio and over wire; wire hands what it does not carry to grpcio."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from clients.sdk.client import Client
from clients.sdk.transport import GrpcTransport, WireTransport
from tests.support.grpc_server import serving
from vocab.errors import NotFound


def _inspect(req: engine_pb2.InspectContainerRequest,
             context: grpc.ServicerContext) -> engine_pb2.ContainerDetail:
    if req.container == "missing":
        context.abort(grpc.StatusCode.NOT_FOUND, "No such container: missing")
    return engine_pb2.ContainerDetail(id=req.container[:12], name=f"{len(req.container)}")


def _pull(req: engine_pb2.PullImageRequest,
          context: grpc.ServicerContext) -> Iterator[types_pb2.PullProgress]:
    for line in ("Pulling from " + req.reference, "Digest: sha256:00"):
        yield types_pb2.PullProgress(status=line)
    if req.reference == "broken":
        context.abort(grpc.StatusCode.NOT_FOUND, "manifest unknown")


def _load(chunks: Iterator[engine_pb2.ArchiveChunk],
          context: grpc.ServicerContext) -> engine_pb2.LoadImagesResponse:
    size = sum(len(c.data) for c in chunks)
    return engine_pb2.LoadImagesResponse(images=[engine_pb2.LoadedImage(id=str(size))])


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    handlers = {
        "InspectContainer": grpc.unary_unary_rpc_method_handler(
            _inspect, engine_pb2.InspectContainerRequest.FromString,
            engine_pb2.ContainerDetail.SerializeToString),
        "PullImage": grpc.unary_stream_rpc_method_handler(
            _pull, engine_pb2.PullImageRequest.FromString,
            types_pb2.PullProgress.SerializeToString),
        "LoadImages": grpc.stream_unary_rpc_method_handler(
            _load, engine_pb2.ArchiveChunk.FromString,
            engine_pb2.LoadImagesResponse.SerializeToString),
    }
    with serving("muelle.engine.v1.Engine", handlers) as address:
        yield address


@pytest.mark.parametrize("lean", [False, True])
def test_both_transports_answer_alike(gateway: str, lean: bool) -> None:
    with Client(gateway, lean=lean) as client:
        assert isinstance(client._transport, WireTransport if lean else GrpcTransport)
        detail = client.inspect("c0ffee" * 4)
        assert (detail.id, detail.name) == ("c0ffee" * 2, "24")
        assert [p.status for p in client.pull("busybox")] == [
            "Pulling from busybox", "Digest: sha256:00"]
        loaded = client.load_images(iter([b"a" * 10, b"b" * 5]))
        assert [i.id for i in loaded.images] == ["15"]


@pytest.mark.parametrize("lean", [False, True])
def test_both_transports_raise_the_same_typed_errors(gateway: str, lean: bool) -> None:
    with Client(gateway, lean=lean) as client:
        with pytest.raises(NotFound, match="^No such container: missing$"):
            client.inspect("missing")
        stream = client.pull("broken")
        assert next(stream).status == "Pulling from broken"
        with pytest.raises(NotFound, match="^manifest unknown$"):
            list(stream)


def test_wire_hands_what_it_does_not_carry_to_grpcio(gateway: str) -> None:
    with Client(gateway, lean=True) as client:
        transport = client._transport
        assert isinstance(transport, WireTransport)
        client.inspect("small")
        assert transport._grpc is None  # a short request went over wire alone
        big = "x" * 70_000  # larger than the peer's first flow-control window
        assert client.inspect(big).name == "70000"
        assert transport._grpc is not None
        assert client.reachable() is False  # the health check is grpcio's (none served)

