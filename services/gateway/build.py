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
                     ref: str) -> Iterator[types_pb2.ArchiveChunk]:
    rec = records.lookup(ref)
    refuse_userns(rec, "export")
    return relay_archive(images.Export(images_pb2.ExportRequest(container_id=rec.id)))


def relay_archive(stream: Any) -> Iterator[types_pb2.ArchiveChunk]:
    """The image store's tar chunks to our client; cancelled when our client goes away,
    so the image store stops writing the tar."""
    try:
        yield from stream  # the same message (types.v1) on both sides
    finally:
        cancel = getattr(stream, "cancel", None)
        if cancel is not None:
            cancel()


def import_image(images: images_pb2_grpc.ImagesStub,
                 requests: Iterator[types_pb2.ImportRequest]
                 ) -> types_pb2.NewImage:
    return images.Import(requests)  # the same messages (types.v1) on both sides


def container_config(images: images_pb2_grpc.ImagesStub, rec: Record,
                     health: types_pb2.Healthcheck | None = None) -> types_pb2.ImageConfig:
    """The container's configuration where Docker keeps it in a committed image: what it
    runs with (the image's config merged with the run options; ``health``, its check)."""
    cfg = types_pb2.ImageConfig(user=rec.spec.user, env=list(rec.spec.env),
                                working_dir=rec.spec.cwd, labels=dict(rec.spec.annotations),
                                stop_signal=rec.stop_signal, healthcheck=health)
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
                     req: engine_pb2.CommitContainerRequest,
                     health: types_pb2.Healthcheck | None = None) -> types_pb2.NewImage:
    """The caller has looked ``rec`` up and checked it with refuse_userns."""
    config = container_config(images, rec, health)
    reply: types_pb2.NewImage = images.Commit(images_pb2.CommitRequest(
        container_id=rec.id, reference=req.reference, config=config,
        author=req.author, comment=req.comment, created_by=" ".join(rec.spec.args),
        container=rec.id))
    return reply


def refuse_userns(rec: Record, verb: str) -> None:
    # Its writable layer holds host IDs (the shifted ones), its image layers on-disk IDs:
    # a tar of both would mix them, so none is made until the walk shifts them back.
    if rec.spec.uid_maps:
        raise FailedPrecondition(f"cannot {verb} container {rec.name or rec.id[:12]}: it runs "
                                 "in a user namespace (--uidmap), not supported yet")
