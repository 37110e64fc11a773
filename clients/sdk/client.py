"""``Client``: the engine.v1 API with Python arguments and typed errors.

Calls go over grpcio, or, with ``lean=True`` (the CLI), unary and server-streaming calls go
over clients/sdk/wire.py, a stdlib HTTP/2 client that spares a short-lived process grpcio's
import and shutdown (~130 ms); grpcio is then imported only for what wire does not do
(client streams, oversized requests, the health check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from google.protobuf import message as pb_message
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from clients.sdk import wire
from clients.sdk.address import resolve_host
from services.core.errors import MuelleError

if TYPE_CHECKING:
    import grpc

SERVICE = engine_pb2.DESCRIPTOR.services_by_name["Engine"]


# Where the response classes live (google.protobuf.message_factory would find them too,
# but its import costs the CLI ~17 ms).
_MODULES = {engine_pb2.DESCRIPTOR.name: engine_pb2, types_pb2.DESCRIPTOR.name: types_pb2}


def _output_class(method: str) -> Any:
    output = SERVICE.methods_by_name[method].output_type
    return getattr(_MODULES[output.file.name], output.name)


class Client:
    def __init__(self, host: str | None = None,
                 environ: Mapping[str, str] | None = None, lean: bool = False) -> None:
        self.host = resolve_host(host, environ)
        self._grpc_channel: grpc.Channel | None = None
        self._grpc_stub: Any = None
        self._wire = wire.Channel(self.host) if lean and wire.supports(self.host) else None

    @property
    def _channel(self) -> grpc.Channel:
        if self._grpc_channel is None:
            from services.core.client import channel

            self._grpc_channel = channel(self.host)
        return self._grpc_channel

    @property
    def _stub(self) -> Any:
        if self._grpc_stub is None:
            from muelle.engine.v1 import engine_pb2_grpc

            self._grpc_stub = engine_pb2_grpc.EngineStub(self._channel)
        return self._grpc_stub

    def close(self) -> None:
        if self._wire is not None:
            self._wire.close()
        if self._grpc_channel is not None:
            self._grpc_channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing: typed errors without a service prefix (the message is the gateway's)

    def _path(self, name: str) -> str:
        return f"/{SERVICE.full_name}/{name}"

    def _call(self, name: str, request: Any) -> Any:
        if self._wire is not None and isinstance(request, pb_message.Message):
            data = request.SerializeToString()
            if len(data) < wire.MAX_REQUEST:
                reply = wire.call(self._wire, self._path(name), data)
                return _output_class(name).FromString(reply)
        import grpc

        from services.core.errors import from_rpc_error

        try:
            return getattr(self._stub, name)(request)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def _stream(self, name: str, request: Any) -> Stream:
        if self._wire is not None:
            data = request.SerializeToString()
            if len(data) < wire.MAX_REQUEST:
                sid, messages = wire.stream(self._wire, self._path(name), data)
                return WireStream(self._wire, sid, messages, _output_class(name))
        import grpc

        from services.core.errors import from_rpc_error

        try:
            return GrpcStream(getattr(self._stub, name)(request))
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def reachable(self, timeout: float = 2.0) -> bool:
        """True when the gateway answers its health check."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc  # only on this rare path

        try:
            reply = health_pb2_grpc.HealthStub(self._channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def info(self) -> engine_pb2.InfoResponse:
        return self._call("Info", engine_pb2.InfoRequest())  # type: ignore[no-any-return]

    # -- images

    def version(self) -> engine_pb2.VersionResponse:
        return self._call("Version", engine_pb2.VersionRequest())  # type: ignore[no-any-return]

    def pull(self, reference: str) -> Stream:
        """Progress messages (types.v1.PullProgress); the last one has the result."""
        return self._stream("PullImage", engine_pb2.PullImageRequest(reference=reference))

    def images(self) -> list[engine_pb2.ImageSummary]:
        return list(self._call("ListImages", engine_pb2.ListImagesRequest()).images)

    def inspect_image(self, reference: str) -> engine_pb2.ImageDetail:
        return self._call(  # type: ignore[no-any-return]
            "InspectImage", engine_pb2.InspectImageRequest(reference=reference))

    def remove_image(self, reference: str, force: bool = False) -> engine_pb2.RemoveImageResponse:
        return self._call(  # type: ignore[no-any-return]
            "RemoveImage", engine_pb2.RemoveImageRequest(reference=reference, force=force))

    def prune_images(self, all: bool = False) -> engine_pb2.PruneImagesResponse:
        return self._call(  # type: ignore[no-any-return]
            "PruneImages", engine_pb2.PruneImagesRequest(all=all))

    def system_df(self) -> engine_pb2.SystemDfResponse:
        return self._call("SystemDf", engine_pb2.SystemDfRequest())  # type: ignore[no-any-return]

    def system_check(self) -> engine_pb2.SystemCheckResponse:
        return self._call(  # type: ignore[no-any-return]
            "SystemCheck", engine_pb2.SystemCheckRequest())

    def save_images(self, references: list[str]) -> Stream:
        """ArchiveChunk messages; their data, in order, is the tar."""
        return self._stream("SaveImages", engine_pb2.SaveImagesRequest(references=references))

    def load_images(self, chunks: Iterator[bytes]) -> engine_pb2.LoadImagesResponse:
        return self._call(  # type: ignore[no-any-return]
            "LoadImages", (engine_pb2.ArchiveChunk(data=c) for c in chunks))

    def export_container(self, container: str) -> Stream:
        """ArchiveChunk messages; their data, in order, is the rootfs tar (`export`)."""
        return self._stream("ExportContainer",
                            engine_pb2.ExportContainerRequest(container=container))

    def import_image(self, chunks: Iterator[bytes], reference: str = "",
                     message: str = "") -> engine_pb2.ImportImageResponse:
        """A one-layer image from the rootfs tar in ``chunks`` (`import`)."""
        def requests() -> Iterator[engine_pb2.ImportImageRequest]:
            yield engine_pb2.ImportImageRequest(reference=reference, message=message)
            for c in chunks:
                yield engine_pb2.ImportImageRequest(data=c)
        return self._call("ImportImage", requests())  # type: ignore[no-any-return]

    def commit_container(self, container: str, reference: str = "", author: str = "",
                         comment: str = "", pause: bool = True
                         ) -> engine_pb2.CommitContainerResponse:
        """A new image from the container's changes (`commit`); a running container is
        paused meanwhile unless ``pause`` is false."""
        return self._call(  # type: ignore[no-any-return]
            "CommitContainer", engine_pb2.CommitContainerRequest(
                container=container, reference=reference, author=author, comment=comment,
                no_pause=not pause))
    def tag(self, source: str, target: str) -> engine_pb2.TagImageResponse:
        return self._call(  # type: ignore[no-any-return]
            "TagImage", engine_pb2.TagImageRequest(source=source, target=target))

    def push(self, reference: str) -> Stream:
        """Progress messages (types.v1.PullProgress); the last one has the result."""
        return self._stream("PushImage", engine_pb2.PushImageRequest(reference=reference))

    def login(self, server: str, username: str, password: str) -> engine_pb2.LoginResponse:
        return self._call(  # type: ignore[no-any-return]
            "Login", engine_pb2.LoginRequest(server=server, username=username,
                                             password=password))

    def logout(self, server: str) -> engine_pb2.LogoutResponse:
        return self._call(  # type: ignore[no-any-return]
            "Logout", engine_pb2.LogoutRequest(server=server))

    # -- containers

    def create(self, image: str, cmd: list[str] | None = None,
               request: engine_pb2.CreateContainerRequest | None = None,
               **fields: Any) -> engine_pb2.CreateContainerResponse:
        """Create from ``request`` or from keyword fields of CreateContainerRequest."""
        req = request if request is not None else engine_pb2.CreateContainerRequest(**fields)
        req.image = image
        if cmd is not None:
            req.cmd.CopyFrom(types_pb2.StringList(values=cmd))
        return self._call("CreateContainer", req)  # type: ignore[no-any-return]

    def start(self, container: str) -> None:
        self._call("StartContainer", engine_pb2.StartContainerRequest(container=container))

    def attach(self, container: str, start: bool = False, logs: bool = False) -> Stream:
        return self._stream("AttachContainer", engine_pb2.AttachContainerRequest(
            container=container, start=start, logs=logs))

    def exec(self, container: str, cmd: list[str],
             stdin: Iterator[bytes | tuple[int, int] | None] | None = None,
             env: list[str] | None = None, user: str = "", working_dir: str = "",
             tty: bool = False, interactive: bool | None = None,
             console_size: tuple[int, int] | None = None, detach: bool = False) -> Stream:
        """Run ``cmd`` in a running container: ExecContainerOutput messages (output, then
        exit). With ``stdin`` (chunks; None or their end is EOF) the process reads them
        (``interactive`` defaults to whether stdin is given); (rows, cols) tuples in it
        resize the process's terminal (``tty``). ``detach``: the one message is the exit,
        0 once the process runs (docker exec -d)."""
        start = engine_pb2.ExecContainerStart(
            container=container, cmd=cmd, env=env or [], user=user, working_dir=working_dir,
            interactive=stdin is not None if interactive is None else interactive, tty=tty,
            detach=detach)
        if console_size:
            start.console_size.rows, start.console_size.cols = console_size

        def inputs() -> Iterator[engine_pb2.ExecContainerInput]:
            yield engine_pb2.ExecContainerInput(start=start)
            if stdin is not None:
                for chunk in stdin:
                    if chunk is None:
                        break
                    if isinstance(chunk, tuple):
                        yield engine_pb2.ExecContainerInput(resize=engine_pb2.ConsoleSize(
                            rows=chunk[0], cols=chunk[1]))
                        continue
                    yield engine_pb2.ExecContainerInput(stdin=chunk)
                yield engine_pb2.ExecContainerInput(close_stdin=True)

        # Bidirectional: grpcio (clients/sdk/wire.py speaks only single-request calls).
        import grpc

        from services.core.errors import from_rpc_error

        try:
            return GrpcStream(self._stub.ExecContainer(inputs()))
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def attach_stream(self, container: str, stdin: Iterator[bytes | tuple[int, int] | None],
                      start: bool = False, logs: bool = False) -> Stream:
        """attach() that also sends ``stdin`` to the container (created with -i): bytes
        as they come; a None is the end of stdin (the container's too, with stdin_once);
        ending without a None is a detach (its stdin stays open); a (rows, cols) tuple
        resizes the container's terminal (created with tty)."""
        request = engine_pb2.AttachContainerRequest(container=container, start=start,
                                                    logs=logs, stdin=True)

        def inputs() -> Iterator[engine_pb2.AttachContainerInput]:
            yield engine_pb2.AttachContainerInput(start=request)
            for chunk in stdin:
                if chunk is None:
                    yield engine_pb2.AttachContainerInput(close_stdin=True)
                    return
                if isinstance(chunk, tuple):
                    yield engine_pb2.AttachContainerInput(resize=engine_pb2.ConsoleSize(
                        rows=chunk[0], cols=chunk[1]))
                    continue
                yield engine_pb2.AttachContainerInput(stdin=chunk)

        import grpc

        from services.core.errors import from_rpc_error

        try:
            return GrpcStream(self._stub.AttachContainerStream(inputs()))
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def run_attached(self, container: str,
                     on_output: Callable[[str, bytes], None]) -> engine_pb2.WaitContainerResponse:
        """Start ``container`` attached; output goes to ``on_output``; returns the exit."""
        for event in self.attach(container, start=True):
            if event.HasField("exit"):
                return event.exit  # type: ignore[no-any-return]
            on_output(event.output.stream, event.output.data)
        raise MuelleError("the attach stream ended without an exit status")

    def pause(self, container: str) -> None:
        self._call("PauseContainer", engine_pb2.PauseContainerRequest(container=container))

    def unpause(self, container: str) -> None:
        self._call("UnpauseContainer", engine_pb2.UnpauseContainerRequest(container=container))

    def restart(self, container: str, timeout: int | None = None) -> None:
        req = engine_pb2.RestartContainerRequest(container=container)
        if timeout is not None:
            req.timeout = timeout
        self._call("RestartContainer", req)

    def stats(self, containers: list[str] | None = None) -> engine_pb2.ContainerStatsResponse:
        return self._call(  # type: ignore[no-any-return]
            "ContainerStats", engine_pb2.ContainerStatsRequest(containers=containers or []))

    def top(self, container: str, ps_args: str = "") -> engine_pb2.TopContainerResponse:
        return self._call(  # type: ignore[no-any-return]
            "TopContainer", engine_pb2.TopContainerRequest(container=container,
                                                           ps_args=ps_args))

    def wait(self, container: str) -> engine_pb2.WaitContainerResponse:
        return self._call(  # type: ignore[no-any-return]
            "WaitContainer", engine_pb2.WaitContainerRequest(container=container))

    def stop(self, container: str, timeout: int | None = None) -> None:
        req = engine_pb2.StopContainerRequest(container=container)
        if timeout is not None:
            req.timeout = timeout
        self._call("StopContainer", req)

    def kill(self, container: str, signal: str = "") -> None:
        self._call("KillContainer", engine_pb2.KillContainerRequest(container=container,
                                                                    signal=signal))

    def remove(self, container: str, force: bool = False, volumes: bool = False) -> str:
        """Remove a container; ``volumes`` also removes its anonymous volumes (rm -v)."""
        return str(self._call("RemoveContainer", engine_pb2.RemoveContainerRequest(
            container=container, force=force, remove_volumes=volumes)).id)

    def containers(self, all: bool = False) -> list[engine_pb2.ContainerSummary]:
        return list(self._call("ListContainers",
                               engine_pb2.ListContainersRequest(all=all)).containers)

    def inspect(self, container: str) -> engine_pb2.ContainerDetail:
        return self._call(  # type: ignore[no-any-return]
            "InspectContainer", engine_pb2.InspectContainerRequest(container=container))

    # ------------------------------------------------------------------ networks

    def create_network(self, name: str, subnet: str = "") -> types_pb2.NetworkInfo:
        return self._call(  # type: ignore[no-any-return]
            "CreateNetwork", engine_pb2.NetworkCreateRequest(name=name, subnet=subnet))

    def networks(self) -> list[types_pb2.NetworkInfo]:
        return list(self._call("ListNetworks", engine_pb2.NetworkListRequest()).networks)

    def inspect_network(self, network: str) -> types_pb2.NetworkInfo:
        return self._call(  # type: ignore[no-any-return]
            "InspectNetwork", engine_pb2.NetworkInspectRequest(network=network))

    def remove_network(self, network: str) -> None:
        self._call("RemoveNetwork", engine_pb2.NetworkRemoveRequest(network=network))

    def connect_network(self, network: str, container: str,
                        aliases: Sequence[str] = ()) -> None:
        self._call("ConnectNetwork", engine_pb2.NetworkConnectRequest(
            network=network, container=container, aliases=list(aliases)))

    def disconnect_network(self, network: str, container: str) -> None:
        self._call("DisconnectNetwork", engine_pb2.NetworkDisconnectRequest(
            network=network, container=container))

    def logs(self, container: str, follow: bool = False, tail: int = 0,
             timestamps: bool = False, since: str = "") -> Stream:
        return self._stream("ContainerLogs", engine_pb2.ContainerLogsRequest(
            container=container, follow=follow, tail=tail, timestamps=timestamps,
            since=since, stdout=True, stderr=True))

    # -- volumes

    def create_volume(self, name: str = "",
                      labels: Mapping[str, str] | None = None) -> engine_pb2.Volume:
        return self._call(  # type: ignore[no-any-return]
            "CreateVolume", engine_pb2.VolumeCreateRequest(name=name, labels=labels or {}))

    def inspect_volume(self, name: str) -> engine_pb2.Volume:
        return self._call(  # type: ignore[no-any-return]
            "InspectVolume", engine_pb2.VolumeInspectRequest(name=name))

    def volumes(self) -> list[engine_pb2.Volume]:
        return list(self._call("ListVolumes", engine_pb2.VolumeListRequest()).volumes)

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._call("RemoveVolume", engine_pb2.VolumeRemoveRequest(name=name, force=force))

    def prune_volumes(self, all: bool = False) -> engine_pb2.VolumePruneResponse:
        return self._call(  # type: ignore[no-any-return]
            "PruneVolumes", engine_pb2.VolumePruneRequest(all=all))


class Stream(Iterator[Any]):
    """A server stream whose errors are typed; ``cancel()`` ends it from our side."""

    def __next__(self) -> Any:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError


class GrpcStream(Stream):
    """A server stream over grpcio."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __next__(self) -> Any:
        import grpc

        from services.core.errors import from_rpc_error

        try:
            return next(self._call)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                raise StopIteration from None
            raise from_rpc_error(err) from None

    def cancel(self) -> None:
        self._call.cancel()


class WireStream(Stream):
    """A server stream over clients/sdk/wire.py, with Stream's interface."""

    def __init__(self, channel: wire.Channel, sid: int, messages: Iterator[bytes],
                 cls: Any) -> None:
        self._channel = channel
        self._sid = sid
        self._messages = messages
        self._cls = cls
        self._cancelled = False

    def __next__(self) -> Any:
        if self._cancelled:
            raise StopIteration
        return self._cls.FromString(next(self._messages))

    def cancel(self) -> None:
        if not self._cancelled:
            self._cancelled = True
            self._channel.cancel(self._sid)
