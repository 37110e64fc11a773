"""`export`, `import` and `commit`: the gateway resolves the container and assembles its
configuration; the image store does the work (the bytes of a rootfs or layer never sit
in the gateway, they stream through it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.images.v1 import images_pb2
from muelle.types.v1 import types_pb2

from services.gateway.records import Record, Records
from vocab.errors import FailedPrecondition, NotFound

# the neighbours' generated stubs, as connect() returns them (typing only)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from muelle.images.v1 import images_pb2_grpc


def export_container(images: images_pb2_grpc.ImagesStub, records: Records,
                     ref: str) -> Iterator[engine_pb2.ArchiveChunk]:
    rec = records.lookup(ref)
    refuse_userns(rec, "export")
    return relay_archive(images.Export(images_pb2.ExportRequest(container_id=rec.id)))


def relay_archive(stream: Any) -> Iterator[engine_pb2.ArchiveChunk]:
    """The image store's tar chunks to our client; cancelled when our client goes away,
    so the image store stops writing the tar."""
    try:
        for chunk in stream:
            yield engine_pb2.ArchiveChunk(data=chunk.data)
    finally:
        cancel = getattr(stream, "cancel", None)
        if cancel is not None:
            cancel()


def import_image(images: images_pb2_grpc.ImagesStub,
                 requests: Iterator[engine_pb2.ImportImageRequest]
                 ) -> engine_pb2.ImportImageResponse:
    reply = images.Import(images_pb2.ImportRequest(reference=r.reference, message=r.message,
                                                   data=r.data) for r in requests)
    return engine_pb2.ImportImageResponse(id=reply.id, name=reply.name)


def container_config(images: images_pb2_grpc.ImagesStub, rec: Record) -> types_pb2.ImageConfig:
    """The container's configuration where Docker keeps it in a committed image: what it
    runs with (the image's config merged with the run options)."""
    cfg = types_pb2.ImageConfig(user=rec.spec.user, env=list(rec.spec.env),
                                working_dir=rec.spec.cwd, labels=dict(rec.spec.annotations),
                                stop_signal=rec.stop_signal)
    if rec.entrypoint is not None:
        cfg.entrypoint.values.extend(rec.entrypoint)
    if rec.cmd is not None:
        cfg.cmd.values.extend(rec.cmd)
    try:
        img = images.Get(images_pb2.GetImageRequest(reference=rec.image_id))
    except NotFound:
        return cfg  # force-removed image: its ports and volumes are unknown
    cfg.exposed_ports.extend(img.config.exposed_ports)
    cfg.volumes.extend(img.config.volumes)
    return cfg


def commit_container(images: images_pb2_grpc.ImagesStub, rec: Record,
                     req: engine_pb2.CommitContainerRequest
                     ) -> engine_pb2.CommitContainerResponse:
    """The caller has looked ``rec`` up and checked it with refuse_userns."""
    reply = images.Commit(images_pb2.CommitRequest(
        container_id=rec.id, reference=req.reference, config=container_config(images, rec),
        author=req.author, comment=req.comment, created_by=" ".join(rec.spec.args),
        container=rec.id))
    return engine_pb2.CommitContainerResponse(id=reply.id, name=reply.name)


def refuse_userns(rec: Record, verb: str) -> None:
    # Its writable layer holds host IDs (the shifted ones), its image layers on-disk IDs:
    # a tar of both would mix them, so none is made until the walk shifts them back.
    if rec.spec.uid_maps:
        raise FailedPrecondition(f"cannot {verb} container {rec.name or rec.id[:12]}: it runs "
                                 "in a user namespace (--uidmap), not supported yet")
