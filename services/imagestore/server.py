"""Thin gRPC servicer for muelle.images.v1: decode, call ImageStore, encode."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from muelle.images.v1 import images_pb2, images_pb2_grpc
from muelle.types.v1 import types_pb2

from services.core import config as configmod
from services.core import heap
from services.core.cancel import Cancel
from services.imagestore import buildstep, containerfiles
from services.imagestore.metadata import ImageRecord
from services.imagestore.registry_client import GrpcRegistryClient
from services.imagestore.store import ImageStore
from vocab.errors import InvalidArgument
from vocab.timefmt import rfc3339_nano


def image_config(doc: dict[str, Any]) -> types_pb2.ImageConfig:
    """types.ImageConfig from the OCI config's "config" object (absent fields stay unset)."""
    cfg = doc.get("config") or {}
    out = types_pb2.ImageConfig(
        user=str(cfg.get("User") or ""),
        env=[str(e) for e in cfg.get("Env") or []],
        working_dir=str(cfg.get("WorkingDir") or ""),
        labels={str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()},
        exposed_ports=sorted(str(p) for p in (cfg.get("ExposedPorts") or {})),
        volumes=sorted(str(v) for v in (cfg.get("Volumes") or {})),
        stop_signal=str(cfg.get("StopSignal") or ""),
    )
    for key, target in (("Entrypoint", out.entrypoint), ("Cmd", out.cmd)):
        value = cfg.get(key)
        if isinstance(value, list):
            target.values.extend(str(v) for v in value)
        elif isinstance(value, str):  # shell form in some hand-written configs
            target.values.append(value)
        else:
            out.ClearField(key.lower())  # type: ignore[arg-type]
    health = cfg.get("Healthcheck")
    if isinstance(health, dict):
        out.healthcheck.CopyFrom(healthcheck(health))
    return out


def healthcheck(doc: dict[str, Any]) -> types_pb2.Healthcheck:
    """types.Healthcheck from a config's "Healthcheck" (durations in ns, as Docker's);
    a value of the wrong type is left out, as if the image had not set it."""
    def number(key: str, limit: int = 2**63 - 1) -> int:
        value = doc.get(key)
        fits = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit
        return value if fits else 0  # type: ignore[return-value]

    test = doc.get("Test")
    return types_pb2.Healthcheck(
        test=[str(t) for t in test] if isinstance(test, list) else [],
        interval_ns=number("Interval"), timeout_ns=number("Timeout"),
        start_period_ns=number("StartPeriod"), start_interval_ns=number("StartInterval"),
        retries=number("Retries", 2**31 - 1))


def encode_image(rec: ImageRecord) -> images_pb2.Image:
    try:
        doc = json.loads(rec.config_json)
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    return images_pb2.Image(
        id=rec.id, repo_tags=rec.repo_tags, repo_digests=rec.repo_digests,
        manifest_digest=rec.manifest_digest, created=rec.created, size=rec.size,
        platform=types_pb2.Platform(os=rec.platform.get("os", ""),
                                    architecture=rec.platform.get("architecture", ""),
                                    variant=rec.platform.get("variant", "")),
        config=image_config(doc), diff_ids=rec.diff_ids, chain_id=rec.chain_id,
        config_json=rec.config_json, author=str(doc.get("author") or ""),
    )


class ImagesServicer(images_pb2_grpc.ImagesServicer):
    def __init__(self, store: ImageStore) -> None:
        self.store = store

    def Pull(self, request: types_pb2.PullRequest,  # noqa: N802 - gRPC naming
             context: grpc.ServicerContext) -> Iterator[types_pb2.PullProgress]:
        platform = request.platform if request.HasField("platform") else None
        # The caller going away stops the downloads now, not at the next progress message.
        cancel = Cancel()
        context.add_callback(cancel.set)
        credentials = request.credentials if request.HasField("credentials") else None
        yield from self.store.pull(request.reference, platform, cancel, credentials)

    def List(self, request: images_pb2.ListImagesRequest,  # noqa: N802
             context: grpc.ServicerContext) -> images_pb2.ListImagesResponse:
        images = [encode_image(r) for r in self.store.list_images()]
        return images_pb2.ListImagesResponse(images=images)

    def Get(self, request: images_pb2.GetImageRequest,  # noqa: N802
            context: grpc.ServicerContext) -> images_pb2.Image:
        return encode_image(self.store.get(request.reference))

    def Remove(self, request: types_pb2.RemoveImageRequest,  # noqa: N802
               context: grpc.ServicerContext) -> types_pb2.RemoveImageResponse:
        removed = self.store.remove(request.reference, request.force)
        return types_pb2.RemoveImageResponse(untagged=removed.untagged, deleted=removed.deleted)

    def PrepareRootfs(self, request: images_pb2.PrepareRootfsRequest,  # noqa: N802
                      context: grpc.ServicerContext) -> images_pb2.PrepareRootfsResponse:
        mount, image_id = self.store.prepare_rootfs(request.container_id, request.image)
        return images_pb2.PrepareRootfsResponse(mounts=[mount], image_id=image_id)

    def Tag(self, request: types_pb2.TagRequest,  # noqa: N802
            context: grpc.ServicerContext) -> images_pb2.TagResponse:
        name, image_id = self.store.tag(request.source, request.target)
        return images_pb2.TagResponse(name=name, image_id=image_id)

    def Push(self, request: images_pb2.PushRequest,  # noqa: N802
             context: grpc.ServicerContext) -> Iterator[types_pb2.PullProgress]:
        credentials = request.credentials if request.HasField("credentials") else None
        yield from self.store.push(request.reference, credentials)

    def RemoveRootfs(self, request: images_pb2.RemoveRootfsRequest,  # noqa: N802
                     context: grpc.ServicerContext) -> images_pb2.RemoveRootfsResponse:
        self.store.remove_rootfs(request.container_id)
        return images_pb2.RemoveRootfsResponse()

    def Prune(self, request: types_pb2.PruneImagesRequest,  # noqa: N802
              context: grpc.ServicerContext) -> types_pb2.PruneImagesResponse:
        out = self.store.prune(request.all, keep=set(request.keep))
        return types_pb2.PruneImagesResponse(untagged=out.untagged, deleted=out.deleted,
                                              space_reclaimed=out.reclaimed)

    def DiskUsage(self, request: images_pb2.DiskUsageRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> images_pb2.DiskUsageResponse:
        du = self.store.usage()
        return images_pb2.DiskUsageResponse(
            images=[types_pb2.ImageUsage(id=i.id, repo_tags=i.repo_tags, size=i.size,
                                          shared_size=i.shared_size, containers=i.containers)
                    for i in du.images],
            containers=[images_pb2.ContainerUsage(id=c.id, image_id=c.image_id, size=c.size,
                                                 inodes=c.inodes)
                        for c in du.containers],
            layers_size=du.layers_size, reclaimable_size=du.reclaimable_size,
            blobs_size=du.blobs_size)

    def Check(self, request: images_pb2.CheckRequest,  # noqa: N802
              context: grpc.ServicerContext) -> images_pb2.CheckResponse:
        report = self.store.check()
        return images_pb2.CheckResponse(
            problems=[types_pb2.CheckProblem(kind=p.kind, subject=p.subject,
                                              message=p.message) for p in report.problems],
            blobs=report.blobs, snapshots=report.snapshots, images=report.images,
            containers=report.containers, container_ids=report.container_ids)


    def Save(self, request: types_pb2.SaveImagesRequest,  # noqa: N802
             context: grpc.ServicerContext) -> Iterator[types_pb2.ArchiveChunk]:
        for data in self.store.save(list(request.references)):
            yield types_pb2.ArchiveChunk(data=data)

    def Load(self, request_iterator: Iterator[types_pb2.ArchiveChunk],  # noqa: N802
             context: grpc.ServicerContext) -> types_pb2.LoadImagesResponse:
        loaded = self.store.load(c.data for c in request_iterator)
        return types_pb2.LoadImagesResponse(
            images=[types_pb2.LoadedImage(id=x.image_id, names=x.names) for x in loaded])

    def Changes(self, request: images_pb2.ChangesRequest,  # noqa: N802
                context: grpc.ServicerContext) -> types_pb2.ContainerChangesResponse:
        return types_pb2.ContainerChangesResponse(changes=[
            types_pb2.ContainerChange(path=p, kind=k)
            for p, k in self.store.changes(request.container_id)])

    def StatContainerPath(self, request: images_pb2.ContainerPathRequest,  # noqa: N802
                          context: grpc.ServicerContext) -> types_pb2.ContainerPathStat:
        name, st, target = containerfiles.stat_path(
            self.store.container_layers(request.container_id), request.path)
        return types_pb2.ContainerPathStat(name=name, size=st.st_size, mode=st.st_mode,
                                           mtime=rfc3339_nano(st.st_mtime_ns),
                                           link_target=target)

    def ReadContainerPath(self, request: images_pb2.ContainerPathRequest,  # noqa: N802
                          context: grpc.ServicerContext) -> Iterator[types_pb2.ArchiveChunk]:
        layers = self.store.container_layers(request.container_id)
        for data in containerfiles.read(layers, request.path):
            yield types_pb2.ArchiveChunk(data=data)

    def Export(self, request: images_pb2.ExportRequest,  # noqa: N802
               context: grpc.ServicerContext) -> Iterator[types_pb2.ArchiveChunk]:
        for data in self.store.export(request.container_id):
            yield types_pb2.ArchiveChunk(data=data)

    def Import(self, request_iterator: Iterator[types_pb2.ImportRequest],  # noqa: N802
               context: grpc.ServicerContext) -> types_pb2.NewImage:
        first = next(request_iterator, types_pb2.ImportRequest())
        if first.changes:
            raise InvalidArgument("the image store takes an import's config as config_json; "
                                  "changes are applied by the gateway (engine.v1)")

        def chunks() -> Iterator[bytes]:
            yield first.data
            for msg in request_iterator:
                yield msg.data

        rec, name = self.store.import_image(chunks(), first.reference, first.message,
                                            first.config_json)
        return types_pb2.NewImage(id=rec.id, name=name)

    def Commit(self, request: images_pb2.CommitRequest,  # noqa: N802
               context: grpc.ServicerContext) -> types_pb2.NewImage:
        rec, name = self.store.commit(
            request.container_id, request.config, request.reference, author=request.author,
            comment=request.comment, created_by=request.created_by,
            container=request.container, config_json=request.config_json,
            empty_if_unchanged=request.empty_layer_if_unchanged)
        return types_pb2.NewImage(id=rec.id, name=name)

    def AddFiles(self, request_iterator: Iterator[images_pb2.AddFilesRequest],  # noqa: N802
                 context: grpc.ServicerContext) -> images_pb2.AddFilesResponse:
        first = next(request_iterator, images_pb2.AddFilesRequest())
        if not first.HasField("header"):
            raise InvalidArgument("the first AddFiles message must carry the header")
        rec, added = buildstep.add_files(self.store, first.header,
                                         (m.data for m in request_iterator))
        return images_pb2.AddFilesResponse(id=rec.id, layer_added=added)

    def ReadFiles(self, request: images_pb2.ReadFilesRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> Iterator[types_pb2.ArchiveChunk]:
        for data in buildstep.read_files(self.store, request.image, request.path):
            yield types_pb2.ArchiveChunk(data=data)


def factory(cfg: configmod.Config) -> tuple[
        Callable[[grpc.Server], None], Sequence[str], Callable[[], None] | None]:
    heap.tune()  # pulls stream blobs as ~1 MiB buffers (core/heap.py)
    # The image store's own certificate identifies it to a registry service over TCP.
    registry = GrpcRegistryClient(cfg.address("registry"), cfg.tls_files("imagestore"))
    store = ImageStore(cfg.state_dir("imagestore"), registry, cfg.imagestore)

    def register(server: grpc.Server) -> None:
        images_pb2_grpc.add_ImagesServicer_to_server(ImagesServicer(store), server)

    service_name = images_pb2.DESCRIPTOR.services_by_name["Images"].full_name
    return register, [service_name], store.close
