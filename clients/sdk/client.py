"""``Client``: the engine.v1 API with Python arguments and typed errors.

Calls go through a Transport (clients/sdk/transport.py): grpcio, or, with ``lean=True``
(the CLI), the stdlib HTTP/2 client of wire.py with protobuf-free messages, which spares a
short-lived process grpcio's import and shutdown (~130 ms) and hands what it does not do
to grpcio.
"""

from __future__ import annotations

# collections.abc would import the collections package (~3 ms of every CLI start)
from _collections_abc import Iterator

from clients.sdk.address import plain_allowed, resolve_host, resolve_tls
from clients.sdk.transport import GrpcTransport, Stream, Transport, WireTransport
from vocab.errors import FailedPrecondition, InvalidArgument, MuelleError, Unimplemented

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from muelle.engine.v1 import engine_pb2
    from muelle.types.v1 import types_pb2


def _engine_pb2() -> Any:
    from muelle.engine.v1 import engine_pb2

    return engine_pb2


class Client:
    def __init__(self, host: str | None = None,
                 environ: Mapping[str, str] | None = None, lean: bool = False) -> None:
        self.host = resolve_host(host, environ)
        self._tls = resolve_tls(self.host, environ)
        if self._tls is None and not plain_allowed(self.host):
            raise InvalidArgument(f"{self.host} is reached over mutual TLS only: give the "
                                  f"client's certificate ($MUELLE_CERT_PATH, or --tlsverify "
                                  f"with --tlscacert, --tlscert, --tlskey)")
        self._transport: Transport = (
            WireTransport(self.host, self._tls)
            if lean and WireTransport.supports(self.host) else GrpcTransport(self.host, self._tls))
        # Requests are built from the transport's classes: lite messages over wire (no
        # protobuf import, see lite.py), the generated ones over grpcio; replies come back
        # as the same kind.
        self._pb: Any = self._transport.pb
        self._types: Any = self._transport.types

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing: typed errors without a service prefix (the message is the gateway's)

    def _call(self, name: str, request: Any) -> Any:
        try:
            return self._transport.unary(name, request)
        except Unimplemented as err:
            raise self._unimplemented(err, name) from None

    def _stream(self, name: str, request: Any) -> Stream:
        try:
            return _Explained(self._transport.server_stream(name, request),
                              lambda err: self._unimplemented(err, name))
        except Unimplemented as err:
            raise self._unimplemented(err, name) from None

    def _unimplemented(self, err: Unimplemented, name: str) -> MuelleError:
        """What an UNIMPLEMENTED answer means, asked of the gateway's Version service
        (muelle.version.v1): a gateway of another release that lacks the engine contract
        this client speaks, or that serves it without this call. Asked only then, so a
        command costs no extra round trip; nothing was done (the call was not served)."""
        from clients.sdk import lite

        contract = lite.method_path(name).strip("/").partition("/")[0]
        from vocab.versioning import lacks

        try:
            reply = self._transport.version()
        except Exception:  # noqa: BLE001 - no Version to ask: the original error stands
            return err
        if reply is None:
            return err
        if contract not in reply.services:
            return lacks(contract, "the gateway", self.host, reply)
        from vocab.version import VERSION

        return FailedPrecondition(
            f"the gateway at {self.host} (muelle {reply.version}) serves {contract} "
            f"without {name}, which this client (muelle {VERSION}) needs: an older "
            f"release; upgrade the engine")

    def reachable(self, timeout: float = 2.0) -> bool:
        """True when the gateway answers its health check."""
        return self._transport.healthy(timeout)

    def info(self) -> engine_pb2.InfoResponse:
        return self._call("Info", self._pb.InfoRequest())  # type: ignore[no-any-return]

    # -- images

    def version(self) -> engine_pb2.VersionResponse:
        return self._call("Version", self._pb.VersionRequest())  # type: ignore[no-any-return]

    def pull(self, reference: str, platform: tuple[str, str, str] | None = None) -> Stream:
        """Progress messages (types.v1.PullProgress); the last one has the result.
        ``platform``: (os, architecture, variant) to pull; unset, the host's."""
        req = self._types.PullRequest(reference=reference)
        if platform is not None:
            os_name, arch, variant = platform
            req.platform.CopyFrom(self._types.Platform(os=os_name, architecture=arch,
                                                       variant=variant))
        return self._stream("PullImage", req)

    def images(self, all: bool = False) -> list[engine_pb2.ImageSummary]:
        """Stored images; ``all``: with builds' intermediate images (`images -a`)."""
        return list(self._call("ListImages", self._pb.ListImagesRequest(all=all)).images)

    def inspect_image(self, reference: str) -> engine_pb2.ImageDetail:
        return self._call(  # type: ignore[no-any-return]
            "InspectImage", self._pb.InspectImageRequest(reference=reference))

    def remove_image(self, reference: str, force: bool = False) -> types_pb2.RemoveImageResponse:
        return self._call(  # type: ignore[no-any-return]
            "RemoveImage", self._types.RemoveImageRequest(reference=reference, force=force))

    def prune_images(self, all: bool = False) -> types_pb2.PruneImagesResponse:
        return self._call(  # type: ignore[no-any-return]
            "PruneImages", self._types.PruneImagesRequest(all=all))

    def prune_build_cache(self, all: bool = False) -> engine_pb2.PruneBuildCacheResponse:
        """Forget cached build steps and remove their images (`builder prune`)."""
        return self._call(  # type: ignore[no-any-return]
            "PruneBuildCache", self._pb.PruneBuildCacheRequest(all=all))

    def system_df(self) -> engine_pb2.SystemDfResponse:
        return self._call("SystemDf", self._pb.SystemDfRequest())  # type: ignore[no-any-return]

    def system_check(self, repair: bool = False) -> engine_pb2.SystemCheckResponse:
        """Verify the image store and compare the containers the services know; with
        ``repair``, remove what only some of them know (crash leftovers)."""
        return self._call(  # type: ignore[no-any-return]
            "SystemCheck", self._pb.SystemCheckRequest(repair=repair))

    def save_images(self, references: list[str]) -> Stream:
        """ArchiveChunk messages; their data, in order, is the tar."""
        return self._stream("SaveImages", self._types.SaveImagesRequest(references=references))

    def load_images(self, chunks: Iterator[bytes]) -> types_pb2.LoadImagesResponse:
        from muelle.types.v1 import types_pb2 as pb  # a client stream: grpcio, generated

        return self._transport.client_stream(  # type: ignore[no-any-return]
            "LoadImages", (pb.ArchiveChunk(data=c) for c in chunks))

    def export_container(self, container: str) -> Stream:
        """ArchiveChunk messages; their data, in order, is the rootfs tar (`export`)."""
        return self._stream("ExportContainer",
                            self._pb.ExportContainerRequest(container=container))

    def import_image(self, chunks: Iterator[bytes], reference: str = "",
                     message: str = "", changes: Sequence[str] = ()) -> types_pb2.NewImage:
        """A one-layer image from the rootfs tar in ``chunks`` (`import`); ``changes``:
        Dockerfile instructions for its config (`import --change`)."""
        from muelle.types.v1 import types_pb2 as pb  # a client stream: grpcio, generated

        def requests() -> Iterator[types_pb2.ImportRequest]:
            yield pb.ImportRequest(reference=reference, message=message,
                                   changes=list(changes))
            for c in chunks:
                yield pb.ImportRequest(data=c)
        return self._transport.client_stream(  # type: ignore[no-any-return]
            "ImportImage", requests())

    def build(self, context: Iterator[bytes], dockerfile: str = "", tags: Sequence[str] = (),
              build_args: Mapping[str, str] | None = None, target: str = "",
              no_cache: bool = False, pull: bool = False,
              labels: Mapping[str, str] | None = None, quiet: bool = False,
              network_mode: str = "", platform: str = "") -> Stream:
        """Build an image from a Dockerfile (`build`): ``context`` is the build context
        tar in chunks. BuildEvent messages: output text, then the image ID (last)."""
        pb = self._pb  # an upload: lite messages over wire where the transport has them
        options = pb.BuildOptions(
            dockerfile=dockerfile, tags=list(tags), build_args=dict(build_args or {}),
            target=target, no_cache=no_cache, pull=pull, labels=dict(labels or {}),
            quiet=quiet, network_mode=network_mode, platform=platform)

        def requests() -> Iterator[engine_pb2.BuildRequest]:
            yield pb.BuildRequest(options=options)
            for c in context:
                yield pb.BuildRequest(context=c)

        return self._transport.upload_stream("Build", requests())

    def commit_container(self, container: str, reference: str = "", author: str = "",
                         comment: str = "", pause: bool = True, changes: Sequence[str] = ()
                         ) -> types_pb2.NewImage:
        """A new image from the container's changes (`commit`); a running container is
        paused meanwhile unless ``pause`` is false; ``changes``: Dockerfile instructions
        applied to its config (`commit --change`)."""
        return self._call(  # type: ignore[no-any-return]
            "CommitContainer", self._pb.CommitContainerRequest(
                container=container, reference=reference, author=author, comment=comment,
                no_pause=not pause, changes=list(changes)))
    def tag(self, source: str, target: str) -> engine_pb2.TagImageResponse:
        return self._call(  # type: ignore[no-any-return]
            "TagImage", self._types.TagRequest(source=source, target=target))

    def push(self, reference: str) -> Stream:
        """Progress messages (types.v1.PullProgress); the last one has the result."""
        return self._stream("PushImage", self._pb.PushImageRequest(reference=reference))

    def login(self, server: str, username: str, password: str) -> engine_pb2.LoginResponse:
        return self._call(  # type: ignore[no-any-return]
            "Login", self._pb.LoginRequest(server=server, username=username,
                                             password=password))

    def logout(self, server: str) -> engine_pb2.LogoutResponse:
        return self._call(  # type: ignore[no-any-return]
            "Logout", self._pb.LogoutRequest(server=server))

    # -- containers

    def create(self, image: str, cmd: list[str] | None = None,
               request: engine_pb2.CreateContainerRequest | None = None,
               **fields: Any) -> engine_pb2.CreateContainerResponse:
        """Create from ``request`` or from keyword fields of CreateContainerRequest."""
        req = request if request is not None else self._pb.CreateContainerRequest(**fields)
        req.image = image
        if cmd is not None:
            req.cmd.CopyFrom(self._types.StringList(values=cmd))
        return self._call("CreateContainer", req)  # type: ignore[no-any-return]

    def start(self, container: str) -> None:
        self._call("StartContainer", self._pb.StartContainerRequest(container=container))

    def attach(self, container: str, start: bool = False, logs: bool = False) -> Stream:
        return self._stream("AttachContainer", self._pb.AttachContainerRequest(
            container=container, start=start, logs=logs))

    def exec(self, container: str, cmd: list[str],
             stdin: Iterator[bytes | tuple[int, int] | None] | None = None,
             env: list[str] | None = None, user: str = "", working_dir: str = "",
             tty: bool = False, interactive: bool | None = None,
             console_size: tuple[int, int] | None = None, detach: bool = False) -> Stream:
        """Run ``cmd`` in a running container: ExecOutput messages (output, then
        exit). With ``stdin`` (chunks; None or their end is EOF) the process reads them
        (``interactive`` defaults to whether stdin is given); (rows, cols) tuples in it
        resize the process's terminal (``tty``). ``detach``: the one message is the exit,
        0 once the process runs (docker exec -d)."""
        from muelle.types.v1 import types_pb2 as pb  # bidirectional: grpcio, generated

        start = pb.ExecStart(
            container=container, cmd=cmd, env=env or [], user=user, working_dir=working_dir,
            interactive=stdin is not None if interactive is None else interactive, tty=tty,
            detach=detach)
        if console_size:
            start.console_size.rows, start.console_size.cols = console_size

        def inputs() -> Iterator[types_pb2.ExecInput]:
            yield pb.ExecInput(start=start)
            if stdin is not None:
                for chunk in stdin:
                    if chunk is None:
                        break
                    if isinstance(chunk, tuple):
                        yield pb.ExecInput(resize=pb.ConsoleSize(
                            rows=chunk[0], cols=chunk[1]))
                        continue
                    yield pb.ExecInput(stdin=chunk)
                yield pb.ExecInput(close_stdin=True)

        # Bidirectional: grpcio (clients/sdk/wire.py speaks only single-request calls).
        return self._transport.bidi_stream("ExecContainer", inputs())

    def attach_stream(self, container: str, stdin: Iterator[bytes | tuple[int, int] | None],
                      start: bool = False, logs: bool = False) -> Stream:
        """attach() that also sends ``stdin`` to the container (created with -i): bytes
        as they come; a None is the end of stdin (the container's too, with stdin_once);
        ending without a None is a detach (its stdin stays open); a (rows, cols) tuple
        resizes the container's terminal (created with tty)."""
        pb = _engine_pb2()  # bidirectional: grpcio, generated classes
        from muelle.types.v1 import types_pb2 as types

        request = pb.AttachContainerRequest(container=container, start=start, logs=logs,
                                            stdin=True)

        def inputs() -> Iterator[engine_pb2.AttachContainerInput]:
            yield pb.AttachContainerInput(start=request)
            for chunk in stdin:
                if chunk is None:
                    yield pb.AttachContainerInput(close_stdin=True)
                    return
                if isinstance(chunk, tuple):
                    yield pb.AttachContainerInput(resize=types.ConsoleSize(
                        rows=chunk[0], cols=chunk[1]))
                    continue
                yield pb.AttachContainerInput(stdin=chunk)

        return self._transport.bidi_stream("AttachContainerStream", inputs())

    def run_attached(self, container: str,
                     on_output: Callable[[str, bytes], None]) -> engine_pb2.WaitContainerResponse:
        """Start ``container`` attached; output goes to ``on_output``; returns the exit."""
        for event in self.attach(container, start=True):
            if event.HasField("exit"):
                return event.exit  # type: ignore[no-any-return]
            on_output(event.output.stream, event.output.data)
        raise MuelleError("the attach stream ended without an exit status")

    def pause(self, container: str) -> None:
        self._call("PauseContainer", self._pb.PauseContainerRequest(container=container))

    def unpause(self, container: str) -> None:
        self._call("UnpauseContainer", self._pb.UnpauseContainerRequest(container=container))

    def restart(self, container: str, timeout: int | None = None) -> None:
        req = self._pb.RestartContainerRequest(container=container)
        if timeout is not None:
            req.timeout = timeout
        self._call("RestartContainer", req)

    def stats(self, containers: list[str] | None = None) -> engine_pb2.ContainerStatsResponse:
        return self._call(  # type: ignore[no-any-return]
            "ContainerStats", self._pb.ContainerStatsRequest(containers=containers or []))

    def top(self, container: str, ps_args: str = "") -> types_pb2.TopResponse:
        return self._call(  # type: ignore[no-any-return]
            "TopContainer", self._pb.TopContainerRequest(container=container,
                                                           ps_args=ps_args))

    def wait(self, container: str) -> engine_pb2.WaitContainerResponse:
        return self._call(  # type: ignore[no-any-return]
            "WaitContainer", self._pb.WaitContainerRequest(container=container))

    def stop(self, container: str, timeout: int | None = None) -> None:
        req = self._pb.StopContainerRequest(container=container)
        if timeout is not None:
            req.timeout = timeout
        self._call("StopContainer", req)

    def kill(self, container: str, signal: str = "") -> None:
        self._call("KillContainer", self._pb.KillContainerRequest(container=container,
                                                                    signal=signal))

    def remove(self, container: str, force: bool = False, volumes: bool = False) -> str:
        """Remove a container; ``volumes`` also removes its anonymous volumes (rm -v)."""
        return str(self._call("RemoveContainer", self._pb.RemoveContainerRequest(
            container=container, force=force, remove_volumes=volumes)).id)

    def containers(self, all: bool = False) -> list[engine_pb2.ContainerSummary]:
        return list(self._call("ListContainers",
                               self._pb.ListContainersRequest(all=all)).containers)

    def inspect(self, container: str) -> engine_pb2.ContainerDetail:
        return self._call(  # type: ignore[no-any-return]
            "InspectContainer", self._pb.InspectContainerRequest(container=container))

    # ------------------------------------------------------------------ networks

    def create_network(self, name: str, subnet: str = "") -> types_pb2.NetworkInfo:
        return self._call(  # type: ignore[no-any-return]
            "CreateNetwork", self._types.NetworkCreateRequest(name=name, subnet=subnet))

    def networks(self) -> list[types_pb2.NetworkInfo]:
        return list(self._call("ListNetworks", self._pb.NetworkListRequest()).networks)

    def inspect_network(self, network: str) -> types_pb2.NetworkInfo:
        return self._call(  # type: ignore[no-any-return]
            "InspectNetwork", self._types.NetworkInspectRequest(network=network))

    def remove_network(self, network: str) -> None:
        self._call("RemoveNetwork", self._types.NetworkRemoveRequest(network=network))

    def connect_network(self, network: str, container: str,
                        aliases: Sequence[str] = (), links: Sequence[str] = ()) -> None:
        self._call("ConnectNetwork", self._pb.NetworkConnectRequest(
            network=network, container=container, aliases=list(aliases),
            links=list(links)))

    def disconnect_network(self, network: str, container: str) -> None:
        self._call("DisconnectNetwork", self._pb.NetworkDisconnectRequest(
            network=network, container=container))

    def logs(self, container: str, follow: bool = False, tail: int = 0,
             timestamps: bool = False, since: str = "") -> Stream:
        return self._stream("ContainerLogs", self._pb.ContainerLogsRequest(
            container=container, follow=follow, tail=tail, timestamps=timestamps,
            since=since, stdout=True, stderr=True))

    # -- volumes

    def create_volume(self, name: str = "",
                      labels: Mapping[str, str] | None = None) -> types_pb2.Volume:
        return self._call(  # type: ignore[no-any-return]
            "CreateVolume", self._types.VolumeCreateRequest(name=name, labels=labels or {}))

    def inspect_volume(self, name: str) -> types_pb2.Volume:
        return self._call(  # type: ignore[no-any-return]
            "InspectVolume", self._types.VolumeInspectRequest(name=name))

    def volumes(self) -> list[types_pb2.Volume]:
        return list(self._call("ListVolumes", self._pb.VolumeListRequest()).volumes)

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._call("RemoveVolume", self._types.VolumeRemoveRequest(name=name, force=force))

    def prune_volumes(self, all: bool = False) -> types_pb2.VolumePruneResponse:
        return self._call(  # type: ignore[no-any-return]
            "PruneVolumes", self._types.VolumePruneRequest(all=all))


class _Explained(Stream):
    """A stream whose UNIMPLEMENTED is explained by the gateway's Version (see _unimplemented)."""

    def __init__(self, inner: Stream, explain: Callable[[Unimplemented], MuelleError]) -> None:
        self._inner = inner
        self._explain = explain

    def __next__(self) -> Any:
        try:
            return next(self._inner)
        except Unimplemented as err:
            raise self._explain(err) from None

    def cancel(self) -> None:
        self._inner.cancel()
