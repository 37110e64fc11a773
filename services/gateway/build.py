"""`export`, `import` and `commit`: the gateway resolves the container and assembles its
configuration; the image store does the work (the bytes of a rootfs or layer never sit
in the gateway, they stream through it)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.images.v1 import images_pb2
from muelle.types.v1 import types_pb2

from services.builder.changes import apply_changes, merge_commit
from services.gateway.merge import exposed
from services.gateway.records import Record, Records
from vocab.configjson import docker_config
from vocab.envmerge import merge_env
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
    """The same messages (types.v1) on both sides; the first one's `changes` become the
    config the image store is sent (refused before any byte is stored)."""
    first = next(requests, types_pb2.ImportRequest())
    if first.changes:
        config = apply_changes({}, list(first.changes))  # a refusal: core.server drains
        first = types_pb2.ImportRequest(reference=first.reference, message=first.message,
                                        data=first.data,
                                        config_json=json.dumps(config).encode())
    return images.Import(itertools.chain([first], requests))


def _image(images: images_pb2_grpc.ImagesStub, rec: Record) -> images_pb2.Image | None:
    """The container's image; None once force-removed (its config is then unknown)."""
    try:
        image: images_pb2.Image = images.Get(images_pb2.GetImageRequest(
            reference=rec.image_id))
    except NotFound:
        return None
    return image


def container_config(rec: Record, image: images_pb2.Image | None,
                     health: types_pb2.Healthcheck | None = None) -> types_pb2.ImageConfig:
    """The container's configuration where Docker keeps it in a committed image: the
    image's config merged with the run options as dockerd's container config has it (the
    user's env first, no HOSTNAME or default PATH, which only the process gets; no
    default working directory or stop signal); ``health``, its check."""
    req = rec.request
    base = image.config if image is not None else types_pb2.ImageConfig()
    env = merge_env(list(base.env), list(req.env)) if image is not None else list(rec.spec.env)
    published = [f"{p.container_port}/{p.protocol or 'tcp'}" for p in req.ports]
    anonymous = [b for b in req.binds if ":" not in b]  # -v /path: Config.Volumes
    cfg = types_pb2.ImageConfig(
        user=rec.spec.user, env=env, working_dir=req.working_dir or base.working_dir,
        labels={**base.labels, **req.labels}, stop_signal=req.stop_signal or base.stop_signal,
        healthcheck=health,
        exposed_ports=list(dict.fromkeys([*base.exposed_ports, *published,
                                          *exposed(list(req.exposed_ports))])),
        volumes=list(dict.fromkeys([*base.volumes, *anonymous])))
    if rec.entrypoint is not None:
        cfg.entrypoint.values.extend(rec.entrypoint)
    if rec.cmd is not None:
        cfg.cmd.values.extend(rec.cmd)
    return cfg


def commit_container(images: images_pb2_grpc.ImagesStub, rec: Record,
                     req: engine_pb2.CommitContainerRequest,
                     health: types_pb2.Healthcheck | None = None) -> types_pb2.NewImage:
    """The caller has looked ``rec`` up and checked it with refuse_userns."""
    config = container_config(rec, _image(images, rec), health)
    # The container's config alone, as dockerd commits it: what only an image config has
    # (OnBuild, Shell) is not a container's and is not kept.
    committed = docker_config(config, {})
    if req.changes:
        committed = merge_commit(apply_changes(committed, list(req.changes)), committed)
    reply: types_pb2.NewImage = images.Commit(images_pb2.CommitRequest(
        container_id=rec.id, reference=req.reference, config=config,
        author=req.author, comment=req.comment, created_by=" ".join(rec.spec.args),
        container=rec.id, config_json=json.dumps(committed).encode()))
    return reply


def refuse_userns(rec: Record, verb: str) -> None:
    # Its writable layer holds host IDs (the shifted ones), its image layers on-disk IDs:
    # a tar of both would mix them, so none is made until the walk shifts them back.
    if rec.spec.uid_maps:
        raise FailedPrecondition(f"cannot {verb} container {rec.name or rec.id[:12]}: it runs "
                                 "in a user namespace (--uidmap), not supported yet")
