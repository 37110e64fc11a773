"""The thin CRI servicers: decode the request, call the CRI objects, encode the reply.

RPCs muelle-cri does not serve yet answer UNIMPLEMENTED with the RPC's name (the generated
base class would raise NotImplementedError, which the server shows as INTERNAL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from k8s.cri.v1 import api_pb2, api_pb2_grpc
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc

from services.cri.containers import Containers
from services.cri.events import Events
from services.cri.images import Images
from services.cri.sandboxes import Sandboxes
from services.cri.streaming.server import Session, StreamServer
from vocab.errors import InvalidArgument, MuelleError, Unimplemented
from vocab.version import VERSION

Ctx = grpc.ServicerContext
RUNTIME_NAME = "muelle"
CRI_API_VERSION = "v1"


def _unimplemented(name: str, why: str = "is not implemented by muelle-cri yet"
                   ) -> Callable[..., Any]:
    def method(self: object, request: object, context: Ctx) -> Any:
        raise Unimplemented(f"{name} {why}")
    return method


class RuntimeServicer(api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, engine: engine_pb2_grpc.EngineStub, sandboxes: Sandboxes,
                 containers: Containers, streaming: StreamServer, events: Events) -> None:
        self.engine = engine
        self.sandboxes = sandboxes
        self.containers = containers
        self.streaming = streaming
        self.events = events

    def Version(self, request: api_pb2.VersionRequest,  # noqa: N802
                context: Ctx) -> api_pb2.VersionResponse:
        engine = self.engine.Version(engine_pb2.VersionRequest())
        # "version" is the CRI API version of the kubelet's VersionResponse (0.1.0 in
        # every runtime); runtime_version is muelle's.
        return api_pb2.VersionResponse(version="0.1.0", runtime_name=RUNTIME_NAME,
                                       runtime_version=engine.version or VERSION,
                                       runtime_api_version=CRI_API_VERSION)

    def Status(self, request: api_pb2.StatusRequest,  # noqa: N802
               context: Ctx) -> api_pb2.StatusResponse:
        conditions = []
        try:
            self.engine.Info(engine_pb2.InfoRequest())
            ready, reason, message = True, "", ""
        except MuelleError as exc:
            ready, reason, message = False, "EngineUnavailable", str(exc)
        conditions.append(api_pb2.RuntimeCondition(type="RuntimeReady", status=ready,
                                                   reason=reason, message=message))
        # Pod networks on the shim's bridge are ready whenever the engine is; with CNI,
        # when its config dir has a network too (containerd's NetworkPluginNotReady).
        cni = self.sandboxes.cni
        if ready and cni is not None:
            ready, message = cni.ready()
            reason = "" if ready else "NetworkPluginNotReady"
        conditions.append(api_pb2.RuntimeCondition(type="NetworkReady", status=ready,
                                                   reason=reason, message=message))
        return api_pb2.StatusResponse(
            status=api_pb2.RuntimeStatus(conditions=conditions),
            runtime_handlers=[api_pb2.RuntimeHandler(name=name)
                              for name in self.sandboxes.handlers.names()])

    def RuntimeConfig(self, request: api_pb2.RuntimeConfigRequest,  # noqa: N802
                      context: Ctx) -> api_pb2.RuntimeConfigResponse:
        # The shim writes cgroups itself (no systemd scopes): the kubelet must use cgroupfs.
        return api_pb2.RuntimeConfigResponse(linux=api_pb2.LinuxRuntimeConfiguration(
            cgroup_driver=api_pb2.CGROUPFS))

    def UpdateRuntimeConfig(self, request: api_pb2.UpdateRuntimeConfigRequest,  # noqa: N802
                            context: Ctx) -> api_pb2.UpdateRuntimeConfigResponse:
        # The pod CIDR the kubelet sends is for CNI plugins; the shim's bridge picks its own
        # subnet, so there is nothing to change.
        return api_pb2.UpdateRuntimeConfigResponse()

    def RunPodSandbox(self, request: api_pb2.RunPodSandboxRequest,  # noqa: N802
                      context: Ctx) -> api_pb2.RunPodSandboxResponse:
        return api_pb2.RunPodSandboxResponse(
            pod_sandbox_id=self.sandboxes.run(request.config, request.runtime_handler))

    def StopPodSandbox(self, request: api_pb2.StopPodSandboxRequest,  # noqa: N802
                       context: Ctx) -> api_pb2.StopPodSandboxResponse:
        self.sandboxes.stop(request.pod_sandbox_id)
        return api_pb2.StopPodSandboxResponse()

    def RemovePodSandbox(self, request: api_pb2.RemovePodSandboxRequest,  # noqa: N802
                         context: Ctx) -> api_pb2.RemovePodSandboxResponse:
        self.sandboxes.remove(request.pod_sandbox_id)
        return api_pb2.RemovePodSandboxResponse()

    def PodSandboxStatus(self, request: api_pb2.PodSandboxStatusRequest,  # noqa: N802
                         context: Ctx) -> api_pb2.PodSandboxStatusResponse:
        return self.sandboxes.status(request.pod_sandbox_id, request.verbose)

    def ListPodSandbox(self, request: api_pb2.ListPodSandboxRequest,  # noqa: N802
                       context: Ctx) -> api_pb2.ListPodSandboxResponse:
        return api_pb2.ListPodSandboxResponse(items=self.sandboxes.select(request.filter))

    def CreateContainer(self, request: api_pb2.CreateContainerRequest,  # noqa: N802
                        context: Ctx) -> api_pb2.CreateContainerResponse:
        cid = self.containers.create(request.pod_sandbox_id, request.config)
        return api_pb2.CreateContainerResponse(container_id=cid)

    def StartContainer(self, request: api_pb2.StartContainerRequest,  # noqa: N802
                       context: Ctx) -> api_pb2.StartContainerResponse:
        self.containers.start(request.container_id)
        return api_pb2.StartContainerResponse()

    def StopContainer(self, request: api_pb2.StopContainerRequest,  # noqa: N802
                      context: Ctx) -> api_pb2.StopContainerResponse:
        self.containers.stop(request.container_id, request.timeout)
        return api_pb2.StopContainerResponse()

    def RemoveContainer(self, request: api_pb2.RemoveContainerRequest,  # noqa: N802
                        context: Ctx) -> api_pb2.RemoveContainerResponse:
        self.containers.remove(request.container_id)
        return api_pb2.RemoveContainerResponse()

    def ListContainers(self, request: api_pb2.ListContainersRequest,  # noqa: N802
                       context: Ctx) -> api_pb2.ListContainersResponse:
        return api_pb2.ListContainersResponse(containers=self.containers.select(request.filter))

    def ContainerStatus(self, request: api_pb2.ContainerStatusRequest,  # noqa: N802
                        context: Ctx) -> api_pb2.ContainerStatusResponse:
        return self.containers.status(request.container_id, request.verbose)

    def UpdateContainerResources(self, request: api_pb2.UpdateContainerResourcesRequest,  # noqa: N802
                                 context: Ctx) -> api_pb2.UpdateContainerResourcesResponse:
        self.containers.update(request.container_id, request.linux)
        return api_pb2.UpdateContainerResourcesResponse()

    def GetContainerEvents(self, request: api_pb2.GetEventsRequest,  # noqa: N802
                           context: Ctx) -> Iterator[api_pb2.ContainerEventResponse]:
        events = self.events.subscribe(context.is_active)
        # The headers tell a client that its subscription is in place: what happens after
        # it has them reaches it.
        context.send_initial_metadata(())
        yield from events

    # UNIMPLEMENTED as in containerd 1.6: muelle has no checkpoint/restore (CRIU), and
    # containerd 1.6's CRI has no metrics methods (the kubelet asks only with its alpha
    # PodAndContainerStatsFromCRI gate, and takes UNIMPLEMENTED as "use the stats RPCs").
    CheckpointContainer = _unimplemented(
        "CheckpointContainer", "is not supported by muelle-cri (no checkpoint/restore)")
    ListMetricDescriptors = _unimplemented(
        "ListMetricDescriptors", "is not served by muelle-cri (as by containerd 1.6): pod "
        "metrics come from ListPodSandboxStats")
    ListPodSandboxMetrics = _unimplemented(
        "ListPodSandboxMetrics", "is not served by muelle-cri (as by containerd 1.6): pod "
        "metrics come from ListPodSandboxStats")

    def ReopenContainerLog(self, request: api_pb2.ReopenContainerLogRequest,  # noqa: N802
                           context: Ctx) -> api_pb2.ReopenContainerLogResponse:
        self.containers.reopen_log(request.container_id)
        return api_pb2.ReopenContainerLogResponse()

    def ContainerStats(self, request: api_pb2.ContainerStatsRequest,  # noqa: N802
                       context: Ctx) -> api_pb2.ContainerStatsResponse:
        return api_pb2.ContainerStatsResponse(
            stats=self.containers.stats_of(request.container_id))

    def ListContainerStats(self, request: api_pb2.ListContainerStatsRequest,  # noqa: N802
                           context: Ctx) -> api_pb2.ListContainerStatsResponse:
        return api_pb2.ListContainerStatsResponse(stats=self.containers.stats(request.filter))

    def PodSandboxStats(self, request: api_pb2.PodSandboxStatsRequest,  # noqa: N802
                        context: Ctx) -> api_pb2.PodSandboxStatsResponse:
        return api_pb2.PodSandboxStatsResponse(
            stats=self.sandboxes.stats_of(request.pod_sandbox_id))

    def ListPodSandboxStats(self, request: api_pb2.ListPodSandboxStatsRequest,  # noqa: N802
                            context: Ctx) -> api_pb2.ListPodSandboxStatsResponse:
        return api_pb2.ListPodSandboxStatsResponse(stats=self.sandboxes.stats(request.filter))

    def ExecSync(self, request: api_pb2.ExecSyncRequest,  # noqa: N802
                 context: Ctx) -> api_pb2.ExecSyncResponse:
        return self.containers.exec_sync(request.container_id, list(request.cmd),
                                         request.timeout)


    def Exec(self, request: api_pb2.ExecRequest,  # noqa: N802
             context: Ctx) -> api_pb2.ExecResponse:
        if not request.cmd:
            raise InvalidArgument("exec needs a command")
        cid = self.containers.running(request.container_id)
        _check_streams(request.stdin, request.stdout, request.stderr, request.tty)
        return api_pb2.ExecResponse(url=self.streaming.url_for(Session(
            "exec", cid, tuple(request.cmd), request.tty, request.stdin, request.stdout,
            request.stderr)))

    def Attach(self, request: api_pb2.AttachRequest,  # noqa: N802
               context: Ctx) -> api_pb2.AttachResponse:
        cid = self.containers.running(request.container_id)
        _check_streams(request.stdin, request.stdout, request.stderr, request.tty)
        return api_pb2.AttachResponse(url=self.streaming.url_for(Session(
            "attach", cid, (), request.tty, request.stdin, request.stdout, request.stderr,
            stdin_once=self.containers.stdin_once(cid))))

    def PortForward(self, request: api_pb2.PortForwardRequest,  # noqa: N802
                    context: Ctx) -> api_pb2.PortForwardResponse:
        address = self.sandboxes.address(request.pod_sandbox_id)
        return api_pb2.PortForwardResponse(url=self.streaming.url_for(Session(
            "portforward", request.pod_sandbox_id, address=address)))


def _check_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
    if not (stdin or stdout or stderr):
        raise InvalidArgument("one of stdin, stdout and stderr must be set")
    if tty and stderr:
        raise InvalidArgument("tty and stderr cannot both be set (a terminal has one "
                              "output)")


class ImageServicer(api_pb2_grpc.ImageServiceServicer):
    def __init__(self, images: Images) -> None:
        self.images = images

    def ListImages(self, request: api_pb2.ListImagesRequest,  # noqa: N802
                   context: Ctx) -> api_pb2.ListImagesResponse:
        return api_pb2.ListImagesResponse(images=self.images.select(request.filter))

    def ImageStatus(self, request: api_pb2.ImageStatusRequest,  # noqa: N802
                    context: Ctx) -> api_pb2.ImageStatusResponse:
        return self.images.status(request.image, request.verbose)

    def PullImage(self, request: api_pb2.PullImageRequest,  # noqa: N802
                  context: Ctx) -> api_pb2.PullImageResponse:
        return api_pb2.PullImageResponse(image_ref=self.images.pull(request.image, request.auth))

    def RemoveImage(self, request: api_pb2.RemoveImageRequest,  # noqa: N802
                    context: Ctx) -> api_pb2.RemoveImageResponse:
        self.images.remove(request.image)
        return api_pb2.RemoveImageResponse()

    def ImageFsInfo(self, request: api_pb2.ImageFsInfoRequest,  # noqa: N802
                    context: Ctx) -> api_pb2.ImageFsInfoResponse:
        return self.images.fs_info()


def _fill_unimplemented(cls: type, service: str) -> None:
    """Every RPC of ``service`` that ``cls`` does not define answers UNIMPLEMENTED."""
    for rpc in api_pb2.DESCRIPTOR.services_by_name[service].methods:
        if rpc.name not in cls.__dict__:
            setattr(cls, rpc.name, _unimplemented(rpc.name))


_fill_unimplemented(RuntimeServicer, "RuntimeService")
_fill_unimplemented(ImageServicer, "ImageService")
