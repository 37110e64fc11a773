"""The thin engine.v1 servicer: decode the request, call the Engine, encode the reply."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc
from muelle.images.v1 import images_pb2
from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.gateway.attach import attach_stream
from services.gateway.build import refuse_userns, relay_archive
from services.gateway.building import build_image, prune_build_cache
from services.gateway.engine import Engine
from services.gateway.exec import exec_container
from services.gateway.longcalls import LongCalls
from services.gateway.volumes import Volumes
from vocab.errors import InvalidArgument, MuelleError

Ctx = grpc.ServicerContext


class EngineServicer(engine_pb2_grpc.EngineServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.volumes = Volumes(engine.shim)
        self.long = LongCalls()

    def Version(self, request: engine_pb2.VersionRequest,  # noqa: N802
                context: Ctx) -> engine_pb2.VersionResponse:
        return self.engine.version()

    def PullImage(self, request: types_pb2.PullRequest,  # noqa: N802
                  context: Ctx) -> Iterator[types_pb2.PullProgress]:
        plat = request.platform if request.HasField("platform") else None
        credentials = request.credentials if request.HasField("credentials") else None
        yield from self.engine.pull(request.reference, plat, on_cancel=context.add_callback,
                                    credentials=credentials)
        self._image_event("pull", request.reference)

    def _image_event(self, action: str, ref: str, **attrs: str) -> None:
        self.engine.events.publish("image", action, ref, {"name": ref, **attrs})

    def Events(self, request: engine_pb2.EventsRequest,  # noqa: N802
               context: Ctx) -> Iterator[engine_pb2.Event]:
        with self.long.slot("events"):
            yield from self.engine.events.subscribe(request.since_nano, request.until_nano,
                                                    cancelled=lambda: not context.is_active())

    def ListImages(self, request: engine_pb2.ListImagesRequest,  # noqa: N802
                   context: Ctx) -> engine_pb2.ListImagesResponse:
        return self.engine.list_images(request.all)

    def InspectImage(self, request: engine_pb2.InspectImageRequest,  # noqa: N802
                     context: Ctx) -> engine_pb2.ImageDetail:
        return self.engine.inspect_image(request.reference)

    def RemoveImage(self, request: types_pb2.RemoveImageRequest,  # noqa: N802
                    context: Ctx) -> types_pb2.RemoveImageResponse:
        image_id = request.reference
        with contextlib.suppress(MuelleError):  # the removal says why it cannot
            image_id = self.engine.inspect_image(request.reference).summary.id
        reply = self.engine.remove_image(request.reference, request.force)
        for name in reply.untagged:
            self.engine.events.publish("image", "untag", image_id, {"name": name})
        for image_id in reply.deleted:
            self._image_event("delete", image_id)
        return reply

    def CreateContainer(self, request: engine_pb2.CreateContainerRequest,  # noqa: N802
                        context: Ctx) -> engine_pb2.CreateContainerResponse:
        reply = self.engine.create(request)
        self.engine.container_event("create", reply.id)
        return reply

    def StartContainer(self, request: engine_pb2.StartContainerRequest,  # noqa: N802
                       context: Ctx) -> engine_pb2.StartContainerResponse:
        cid = self.engine.records.lookup(request.container).id
        self.engine.start(cid)
        self.engine.exits.started(cid)
        self.engine.container_event("start", cid)
        return engine_pb2.StartContainerResponse()

    def AttachContainer(self, request: engine_pb2.AttachContainerRequest,  # noqa: N802
                        context: Ctx) -> Iterator[engine_pb2.AttachEvent]:
        with self.long.slot("attach"):
            yield from self.engine.attach(request.container, start=request.start,
                                          logs=request.logs, on_cancel=context.add_callback,
                                          after_finished_at=request.after_finished_at)

    def WaitContainer(self, request: engine_pb2.WaitContainerRequest,  # noqa: N802
                      context: Ctx) -> engine_pb2.WaitContainerResponse:
        with self.long.slot("wait"):
            return self.engine.wait(request.container, request.condition,
                                    cancelled=lambda: not context.is_active(),
                                    after_finished_at=request.after_finished_at)

    def StopContainer(self, request: engine_pb2.StopContainerRequest,  # noqa: N802
                      context: Ctx) -> engine_pb2.StopContainerResponse:
        timeout = request.timeout if request.HasField("timeout") else None
        cid = self.engine.records.lookup(request.container).id
        self.engine.stop(cid, timeout)  # its die first (Exits)
        self.engine.container_event("stop", cid)
        return engine_pb2.StopContainerResponse()

    def KillContainer(self, request: engine_pb2.KillContainerRequest,  # noqa: N802
                      context: Ctx) -> engine_pb2.KillContainerResponse:
        cid = self.engine.records.lookup(request.container).id
        self.engine.kill(cid, request.signal)
        self.engine.container_event("kill", cid, signal=request.signal or "SIGKILL")
        return engine_pb2.KillContainerResponse()

    def RemoveContainer(self, request: engine_pb2.RemoveContainerRequest,  # noqa: N802
                        context: Ctx) -> engine_pb2.RemoveContainerResponse:
        rec = self.engine.records.lookup(request.container)
        attrs = self.engine.container_attributes(rec.id)
        cid = self.engine.remove(rec.id, request.force, request.remove_volumes)
        self.engine.exits.exited(cid, 137, attrs)  # forced while running: killed
        self.engine.events.publish("container", "destroy", cid, attrs)
        return engine_pb2.RemoveContainerResponse(id=cid)

    def ListContainers(self, request: engine_pb2.ListContainersRequest,  # noqa: N802
                       context: Ctx) -> engine_pb2.ListContainersResponse:
        return self.engine.list(request.all)

    def InspectContainer(self, request: engine_pb2.InspectContainerRequest,  # noqa: N802
                         context: Ctx) -> engine_pb2.ContainerDetail:
        return self.engine.inspect(request.container, request.runtime_spec)

    def ContainerLogs(self, request: engine_pb2.ContainerLogsRequest,  # noqa: N802
                      context: Ctx) -> Iterator[types_pb2.LogEntry]:
        with self.long.slot("logs -f") if request.follow else contextlib.nullcontext():
            yield from self.engine.logs(request, on_cancel=context.add_callback)

    def PruneImages(self, request: types_pb2.PruneImagesRequest,  # noqa: N802
                    context: Ctx) -> types_pb2.PruneImagesResponse:
        return self.engine.prune_images(request.all)

    def SystemDf(self, request: engine_pb2.SystemDfRequest,  # noqa: N802
                 context: Ctx) -> engine_pb2.SystemDfResponse:
        return self.engine.system_df()

    def SystemCheck(self, request: engine_pb2.SystemCheckRequest,  # noqa: N802
                    context: Ctx) -> engine_pb2.SystemCheckResponse:
        return self.engine.system_check(repair=request.repair)

    def SaveImages(self, request: types_pb2.SaveImagesRequest,  # noqa: N802
                   context: Ctx) -> Iterator[types_pb2.ArchiveChunk]:
        yield from self.engine.save_images(list(request.references))

    def LoadImages(self, request_iterator: Iterator[types_pb2.ArchiveChunk],  # noqa: N802
                   context: Ctx) -> types_pb2.LoadImagesResponse:
        reply = self.engine.load_images(c.data for c in request_iterator)
        for image in reply.images:  # dockerd: one "load" per image, named by its ID
            self._image_event("load", image.id)
        return reply

    def TagImage(self, request: types_pb2.TagRequest,  # noqa: N802
                 context: Ctx) -> engine_pb2.TagImageResponse:
        reply = self.engine.tag_image(request.source, request.target)
        image_id = self.engine.inspect_image(request.target).summary.id
        self.engine.events.publish("image", "tag", image_id, {"name": reply.name})
        return reply

    def PushImage(self, request: engine_pb2.PushImageRequest,  # noqa: N802
                  context: Ctx) -> Iterator[types_pb2.PullProgress]:
        credentials = request.credentials if request.HasField("credentials") else None
        yield from self.engine.push(request.reference, credentials)
        self._image_event("push", request.reference)

    def Login(self, request: engine_pb2.LoginRequest,  # noqa: N802
              context: Ctx) -> engine_pb2.LoginResponse:
        return self.engine.login(request.server, request.username, request.password)

    def Logout(self, request: engine_pb2.LogoutRequest,  # noqa: N802
               context: Ctx) -> engine_pb2.LogoutResponse:
        return self.engine.logout(request.server)

    def Info(self, request: engine_pb2.InfoRequest,  # noqa: N802
             context: Ctx) -> engine_pb2.InfoResponse:
        return self.engine.info()

    def PauseContainer(self, request: engine_pb2.PauseContainerRequest,  # noqa: N802
                       context: Ctx) -> engine_pb2.PauseContainerResponse:
        cid = self.engine.records.lookup(request.container).id
        self.engine.pause(cid)
        self.engine.container_event("pause", cid)
        return engine_pb2.PauseContainerResponse()

    def UnpauseContainer(self, request: engine_pb2.UnpauseContainerRequest,  # noqa: N802
                         context: Ctx) -> engine_pb2.UnpauseContainerResponse:
        cid = self.engine.records.lookup(request.container).id
        self.engine.unpause(cid)
        self.engine.container_event("unpause", cid)
        return engine_pb2.UnpauseContainerResponse()

    def RestartContainer(self, request: engine_pb2.RestartContainerRequest,  # noqa: N802
                         context: Ctx) -> engine_pb2.RestartContainerResponse:
        cid = self.engine.records.lookup(request.container).id
        self.engine.restart(cid, request.timeout if request.HasField("timeout") else None)
        self.engine.exits.started(cid)
        self.engine.container_event("start", cid)
        self.engine.container_event("restart", cid)
        return engine_pb2.RestartContainerResponse()
    def RenameContainer(self, request: engine_pb2.RenameContainerRequest,  # noqa: N802
                        context: Ctx) -> engine_pb2.RenameContainerResponse:
        cid, old = self.engine.rename(request.container, request.name)
        self.engine.container_event("rename", cid, oldName="/" + old)
        return engine_pb2.RenameContainerResponse()

    def ContainerChanges(self, request: engine_pb2.ContainerChangesRequest,  # noqa: N802
                         context: Ctx) -> types_pb2.ContainerChangesResponse:
        rec = self.engine.records.lookup(request.container)
        changes: types_pb2.ContainerChangesResponse = self.engine.images.Changes(
            images_pb2.ChangesRequest(container_id=rec.id))
        return changes

    def StatContainerPath(self, request: engine_pb2.ContainerPathRequest,  # noqa: N802
                          context: Ctx) -> types_pb2.ContainerPathStat:
        rec = self.engine.records.lookup(request.container)
        # The shim answers a path that goes through the container's mounts (volumes,
        # binds, a running one's tmpfs); the image store every other from the layers.
        found = self.engine.shim.StatPath(shim_pb2.PathRequest(id=rec.id, path=request.path))
        if found.through_mounts:
            through: types_pb2.ContainerPathStat = found.stat
            return through
        stat: types_pb2.ContainerPathStat = self.engine.images.StatContainerPath(
            images_pb2.ContainerPathRequest(container_id=rec.id, path=request.path))
        return stat

    def CopyFromContainer(self, request: engine_pb2.ContainerPathRequest,  # noqa: N802
                          context: Ctx) -> Iterator[types_pb2.ArchiveChunk]:
        rec = self.engine.records.lookup(request.container)
        refuse_userns(rec, "copy from")
        at = shim_pb2.PathRequest(id=rec.id, path=request.path)
        if self.engine.shim.StatPath(at).through_mounts:
            yield from relay_archive(self.engine.shim.ReadPath(at))
            return
        yield from relay_archive(self.engine.images.ReadContainerPath(
            images_pb2.ContainerPathRequest(container_id=rec.id, path=request.path)))

    def CopyToContainer(self,  # noqa: N802
                        request_iterator: Iterator[engine_pb2.CopyToContainerInput],
                        context: Ctx) -> engine_pb2.CopyToContainerResponse:
        first = next(request_iterator, engine_pb2.CopyToContainerInput())
        if not first.HasField("start"):
            raise InvalidArgument("the first message of CopyToContainer must be start")
        start = first.start
        rec = self.engine.records.lookup(start.container)
        refuse_userns(rec, "copy into")

        def inputs() -> Iterator[shim_pb2.CopyToInput]:
            yield shim_pb2.CopyToInput(start=shim_pb2.CopyToStart(
                id=rec.id, path=start.path, copy_uid_gid=start.copy_uid_gid,
                no_overwrite_dir_non_dir=start.no_overwrite_dir_non_dir))
            for message in request_iterator:
                yield shim_pb2.CopyToInput(data=message.data)

        self.engine.shim.CopyTo(inputs())
        return engine_pb2.CopyToContainerResponse()

    def UpdateContainer(self, request: engine_pb2.UpdateContainerRequest,  # noqa: N802
                        context: Ctx) -> engine_pb2.UpdateContainerResponse:
        cid = self.engine.records.lookup(request.container).id
        resources = engine_pb2.UpdateContainerRequest()
        resources.CopyFrom(request)
        resources.ClearField("container")
        resources.ClearField("restart_policy")
        if resources.ByteSize():  # new limits (docker update -m..., CRI's resources)
            self.engine.update(request)
        if request.restart_policy:
            self.engine.update_restart_policy(cid, request.restart_policy)
        self.engine.container_event("update", cid)
        return engine_pb2.UpdateContainerResponse()

    def CreateVolume(self, request: types_pb2.VolumeCreateRequest,  # noqa: N802
                     context: Ctx) -> types_pb2.Volume:
        volume = self.volumes.create(request.name, dict(request.labels))
        self.engine.events.publish("volume", "create", volume.name, {"driver": "local"})
        return volume

    def InspectVolume(self, request: types_pb2.VolumeInspectRequest,  # noqa: N802
                      context: Ctx) -> types_pb2.Volume:
        return self.volumes.inspect(request.name)

    def ListVolumes(self, request: engine_pb2.VolumeListRequest,  # noqa: N802
                    context: Ctx) -> types_pb2.VolumeListResponse:
        return self.volumes.list()

    def RemoveVolume(self, request: types_pb2.VolumeRemoveRequest,  # noqa: N802
                     context: Ctx) -> engine_pb2.VolumeRemoveResponse:
        reply = self.volumes.remove(request.name, request.force)
        self.engine.events.publish("volume", "destroy", request.name, {"driver": "local"})
        return reply

    def PruneVolumes(self, request: types_pb2.VolumePruneRequest,  # noqa: N802
                     context: Ctx) -> types_pb2.VolumePruneResponse:
        return self.volumes.prune(request.all)

    def ContainerStats(self, request: engine_pb2.ContainerStatsRequest,  # noqa: N802
                       context: Ctx) -> engine_pb2.ContainerStatsResponse:
        return self.engine.stats(list(request.containers))

    def TopContainer(self, request: engine_pb2.TopContainerRequest,  # noqa: N802
                     context: Ctx) -> types_pb2.TopResponse:
        return self.engine.top(request.container, request.ps_args)
    def CreateNetwork(self, request: types_pb2.NetworkCreateRequest,  # noqa: N802
                      context: Ctx) -> types_pb2.NetworkInfo:
        info = self.engine.create_network(request.name, request.subnet, dict(request.labels))
        self._network_event("create", info)
        return info

    def _network_event(self, action: str, info: types_pb2.NetworkInfo, **attrs: str) -> None:
        self.engine.events.publish("network", action, info.id,
                                   {"name": info.name, "type": info.driver or "bridge", **attrs})

    def ListNetworks(self, request: engine_pb2.NetworkListRequest,  # noqa: N802
                     context: Ctx) -> types_pb2.NetworkListResponse:
        return self.engine.list_networks()

    def InspectNetwork(self, request: types_pb2.NetworkInspectRequest,  # noqa: N802
                       context: Ctx) -> types_pb2.NetworkInfo:
        return self.engine.inspect_network(request.network)

    def RemoveNetwork(self, request: types_pb2.NetworkRemoveRequest,  # noqa: N802
                      context: Ctx) -> engine_pb2.NetworkRemoveResponse:
        info = self.engine.inspect_network(request.network)  # for the event
        self.engine.remove_network(request.network)  # the name: pre-defined ones refuse
        self._network_event("destroy", info)
        return engine_pb2.NetworkRemoveResponse()

    def ConnectNetwork(self, request: engine_pb2.NetworkConnectRequest,  # noqa: N802
                       context: Ctx) -> engine_pb2.NetworkConnectResponse:
        self.engine.connect_network(request.network, request.container, list(request.aliases),
                                    list(request.links))
        self._network_event("connect", self.engine.inspect_network(request.network),
                            container=self.engine.records.lookup(request.container).id)
        return engine_pb2.NetworkConnectResponse()

    def DisconnectNetwork(self, request: engine_pb2.NetworkDisconnectRequest,  # noqa: N802
                          context: Ctx) -> engine_pb2.NetworkDisconnectResponse:
        self.engine.disconnect_network(request.network, request.container)
        self._network_event("disconnect", self.engine.inspect_network(request.network),
                            container=self.engine.records.lookup(request.container).id)
        return engine_pb2.NetworkDisconnectResponse()

    def ExecContainer(self, request_iterator: Iterator[types_pb2.ExecInput],  # noqa: N802
                      context: Ctx) -> Iterator[types_pb2.ExecOutput]:
        started: list[types_pb2.ExecStart] = []

        def inputs() -> Iterator[types_pb2.ExecInput]:
            for message in request_iterator:
                if message.HasField("start") and not started:
                    started.append(message.start)
                    self._exec_event(message.start, "exec_start: " + " ".join(message.start.cmd))
                yield message

        with self.long.slot("exec"):
            for out in exec_container(self.engine.records, self.engine.shim, inputs(),
                                      on_cancel=context.add_callback):
                if out.HasField("exit") and started:
                    self._exec_event(started[0], "exec_die", exitCode=str(out.exit.exit_code))
                yield out

    def _exec_event(self, start: types_pb2.ExecStart, action: str,
                    **attrs: str) -> None:
        with contextlib.suppress(MuelleError):  # no such container: exec reports that
            cid = self.engine.records.lookup(start.container).id
            self.engine.container_event(action, cid, **attrs)

    def AttachContainerStream(  # noqa: N802
            self, request_iterator: Iterator[engine_pb2.AttachContainerInput],
            context: Ctx) -> Iterator[engine_pb2.AttachEvent]:
        with self.long.slot("attach"):
            yield from attach_stream(self.engine, request_iterator,
                                     on_cancel=context.add_callback)
    def ExportContainer(self, request: engine_pb2.ExportContainerRequest,  # noqa: N802
                        context: Ctx) -> Iterator[types_pb2.ArchiveChunk]:
        yield from self.engine.export_container(request.container)

    def ImportImage(self, request_iterator: Iterator[types_pb2.ImportRequest],  # noqa: N802
                    context: Ctx) -> types_pb2.NewImage:
        reply = self.engine.import_image(request_iterator)
        if reply.name:  # dockerd: the tag, then the import (named by the ID)
            self.engine.events.publish("image", "tag", reply.id, {"name": reply.name})
        self._image_event("import", reply.id)
        return reply

    def CommitContainer(self, request: engine_pb2.CommitContainerRequest,  # noqa: N802
                        context: Ctx) -> types_pb2.NewImage:
        return self.engine.commit_container(request)

    def PruneBuildCache(self, request: engine_pb2.PruneBuildCacheRequest,  # noqa: N802
                        context: Ctx) -> engine_pb2.PruneBuildCacheResponse:
        return prune_build_cache(self.engine, request.all)

    def Build(self, request_iterator: Iterator[engine_pb2.BuildRequest],  # noqa: N802
              context: Ctx) -> Iterator[engine_pb2.BuildEvent]:
        yield from build_image(self.engine, request_iterator, is_active=context.is_active,
                               on_cancel=context.add_callback)
