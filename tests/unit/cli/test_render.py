"""The CLI against a fake gateway (a real grpc server on a temp unix socket)."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc
from muelle.types.v1 import types_pb2

from clients.cli.main import run
from clients.cli.progress import PullPrinter
from services.core.server import ErrorInterceptor
from vocab import errors
from vocab.timefmt import human_duration, rfc3339_nano

CID = "c0ffee" + "1" * 58
IMG = "sha256:" + "ab" * 32


class FakeEngine(engine_pb2_grpc.EngineServicer):
    """Canned answers; ``fail[method]`` makes a method raise that error."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail: dict[str, Exception] = {}
        self.fail_once: dict[str, Exception] = {}
        self.exit_code = 0
        self.more_containers: list[engine_pb2.ContainerSummary] = []  # after "web" in ps

    def _record(self, name: str, request: Any) -> None:
        self.calls.append((name, request))
        if name in self.fail_once:
            raise self.fail_once.pop(name)
        if name in self.fail:
            raise self.fail[name]

    def Version(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("Version", request)
        return engine_pb2.VersionResponse(version="0.1.0", api_version="v1", os="linux",
                                          arch="x86_64", kernel_version="6.1",
                                          components={"gateway": "0.1.0",
                                                      "shim": "error: unreachable"})

    def Info(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("Info", request)
        return engine_pb2.InfoResponse(
            containers=3, containers_running=1, containers_paused=1, containers_stopped=1,
            images=2, server_version="0.1.0", storage_driver="overlayfs", cgroup_version="1",
            runtimes=[types_pb2.RuntimeInfo(name="muelle", path="/x/muelle-runtime",
                                             version="muelle-runtime version 0.1.0"),
                      types_pb2.RuntimeInfo(name="runc", path="/usr/sbin/runc",
                                             version="runc version 1.1.5")],
            default_runtime="muelle", ncpu=2, mem_total=24 * 1024**3, kernel_version="6.1")

    def ContainerStats(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("ContainerStats", request)
        n = sum(1 for c in self.calls if c[0] == "ContainerStats")
        return engine_pb2.ContainerStatsResponse(containers=[types_pb2.ContainerStats(
            id=CID, name="web", read_time_ns=n * 500_000_000, cpu_usage_ns=n * 125_000_000,
            memory_usage=8 * 1024**2, memory_limit=64 * 1024**2, pids=3, block_read=4096,
            net_rx=1500, net_tx=0, online_cpus=2)])

    def TopContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("TopContainer", request)
        return types_pb2.TopResponse(
            titles=["UID", "PID", "CMD"],
            processes=[types_pb2.TopRow(fields=["root", "4242", "sleep 100"])])

    def PauseContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("PauseContainer", request)
        return engine_pb2.PauseContainerResponse()

    def UnpauseContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("UnpauseContainer", request)
        return engine_pb2.UnpauseContainerResponse()

    def RestartContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("RestartContainer", request)
        return engine_pb2.RestartContainerResponse()

    def UpdateContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("UpdateContainer", request)
        return engine_pb2.UpdateContainerResponse()

    def PullImage(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("PullImage", request)
        layer = "sha256:" + "a" * 64
        yield types_pb2.PullProgress(status="Pulling from library/busybox")
        for phase, cur in (("Downloading", 100), ("Downloading", 2000), ("Pull complete", 0)):
            yield types_pb2.PullProgress(layer=types_pb2.LayerProgress(
                digest=layer, phase=phase, current=cur, total=2000))
        yield types_pb2.PullProgress(result=types_pb2.PullResult(
            reference="docker.io/library/busybox:latest", digest="sha256:" + "d" * 64,
            image_id=IMG))

    def PushImage(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("PushImage", request)
        layer = "sha256:" + "b" * 64
        yield types_pb2.PullProgress(status="The push refers to repository [r:5000/a/b]")
        for phase, cur in (("Preparing", 0), ("Pushing", 500), ("Pushing", 1000),
                           ("Pushed", 0)):
            yield types_pb2.PullProgress(layer=types_pb2.LayerProgress(
                digest=layer, phase=phase, current=cur, total=1000))
        yield types_pb2.PullProgress(status="2: digest: sha256:" + "e" * 64 + " size: 527")
        yield types_pb2.PullProgress(result=types_pb2.PullResult(
            reference="r:5000/a/b:2", digest="sha256:" + "e" * 64, image_id=IMG))

    def TagImage(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("TagImage", request)
        return engine_pb2.TagImageResponse(name=request.target)

    def Login(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("Login", request)
        if request.password != "right":
            raise errors.Unauthenticated("unauthorized: incorrect username or password")
        return engine_pb2.LoginResponse(status="Login Succeeded")

    def Logout(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("Logout", request)
        return engine_pb2.LogoutResponse(server=request.server or "docker.io")

    def ListImages(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("ListImages", request)
        return engine_pb2.ListImagesResponse(images=[engine_pb2.ImageSummary(
            id=IMG, repo_tags=["docker.io/library/busybox:latest",
                               "127.0.0.1:5000/demo/busybox:1"],
            created="2024-01-01T00:00:00Z", size=1234)])

    def InspectImage(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("InspectImage", request)
        if request.reference != "busybox":
            raise errors.NotFound(f"No such image: {request.reference}")
        detail = engine_pb2.ImageDetail(summary=engine_pb2.ImageSummary(id=IMG),
                                        diff_ids=["sha256:" + "e" * 64])
        detail.config.cmd.values.append("sh")
        return detail

    def RemoveImage(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("RemoveImage", request)
        return types_pb2.RemoveImageResponse(untagged=[request.reference], deleted=[IMG])

    def PruneImages(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("PruneImages", request)
        return types_pb2.PruneImagesResponse(untagged=["busybox:old"], deleted=[IMG],
                                              space_reclaimed=2_500_000)

    def SystemDf(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("SystemDf", request)
        return engine_pb2.SystemDfResponse(
            summary=[engine_pb2.DfSummary(type="Images", total=2, active=1, size=4_000_000,
                                          reclaimable=1_000_000),
                     engine_pb2.DfSummary(type="Containers", total=1, active=1, size=100)],
            images=[types_pb2.ImageUsage(id=IMG, repo_tags=["docker.io/library/busybox:1"],
                                       size=4_000_000, shared_size=1_000_000, containers=1)],
            containers=[engine_pb2.DfContainer(id=CID, name="web", image_id=IMG, size=100,
                                               state="running")])

    def SystemCheck(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("SystemCheck", request)
        problems = [types_pb2.CheckProblem(kind="blob", subject=IMG, message="bad")] \
            if "SystemCheck" in self.__dict__.get("broken", ()) else []
        return engine_pb2.SystemCheckResponse(problems=problems, blobs=3, images=1)

    def SaveImages(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("SaveImages", request)
        yield types_pb2.ArchiveChunk(data=b"tar-")
        yield types_pb2.ArchiveChunk(data=b"bytes")

    def LoadImages(self, request_iterator, context):  # type: ignore[no-untyped-def]  # noqa: N802
        data = b"".join(c.data for c in request_iterator)
        self._record("LoadImages", data)
        return types_pb2.LoadImagesResponse(images=[
            types_pb2.LoadedImage(id=IMG, names=["docker.io/library/busybox:1"]),
            types_pb2.LoadedImage(id=IMG)])

    def ExportContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("ExportContainer", request)
        yield types_pb2.ArchiveChunk(data=b"rootfs-tar")

    def ImportImage(self, request_iterator, context):  # type: ignore[no-untyped-def]  # noqa: N802
        reqs = list(request_iterator)
        self._record("ImportImage", (reqs[0].reference, reqs[0].message,
                                     b"".join(r.data for r in reqs)))
        return types_pb2.NewImage(id=IMG)

    def CommitContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("CommitContainer", request)
        return types_pb2.NewImage(id=IMG)

    def PruneBuildCache(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("PruneBuildCache", request)
        return engine_pb2.PruneBuildCacheResponse(deleted=[IMG], space_reclaimed=1_500_000)

    def Build(self, request_iterator, context):  # type: ignore[no-untyped-def]  # noqa: N802
        reqs = list(request_iterator)
        self._record("Build", (reqs[0].options, b"".join(r.context for r in reqs[1:])))
        if not reqs[0].options.quiet:
            yield engine_pb2.BuildEvent(stream="Step 1/1 : FROM busybox\n")
            yield engine_pb2.BuildEvent(stream=f" ---> {IMG[7:19]}\n")
        yield engine_pb2.BuildEvent(image_id=IMG)

    def CreateContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("CreateContainer", request)
        return engine_pb2.CreateContainerResponse(id=CID)

    def StartContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("StartContainer", request)
        return engine_pb2.StartContainerResponse()

    def AttachContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("AttachContainer", request)
        yield engine_pb2.AttachEvent(output=types_pb2.LogEntry(stream="stdout", data=b"out\n"))
        yield engine_pb2.AttachEvent(output=types_pb2.LogEntry(stream="stderr", data=b"err\n"))
        yield engine_pb2.AttachEvent(exit=engine_pb2.WaitContainerResponse(
            exit_code=self.exit_code))

    def WaitContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("WaitContainer", request)
        return engine_pb2.WaitContainerResponse(exit_code=self.exit_code)

    def StopContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("StopContainer", request)
        return engine_pb2.StopContainerResponse()

    def KillContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("KillContainer", request)
        return engine_pb2.KillContainerResponse()

    def RemoveContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("RemoveContainer", request)
        if request.container == "ghost":
            raise errors.NotFound("No such container: ghost")
        return engine_pb2.RemoveContainerResponse(id=CID)

    def ListContainers(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("ListContainers", request)
        return engine_pb2.ListContainersResponse(containers=[engine_pb2.ContainerSummary(
            id=CID, name="web", image="busybox", command="sh -c while true; do sleep 1; done",
            created="2024-01-01T00:00:00Z", state="running", status="Up 3 seconds",
            ports=[types_pb2.NetworkPort(container_port=80, host_ip="127.0.0.1",
                                         host_port=8080)]), *self.more_containers])

    def InspectContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("InspectContainer", request)
        if request.container != "web":
            raise errors.NotFound(f"No such container: {request.container}")
        d = engine_pb2.ContainerDetail(id=CID, name="web", args=["sleep", "9"],
                                       state=engine_pb2.ContainerState(
                                           status="running", running=True, pid=42))
        d.cmd.values.extend(["sleep", "9"])
        d.ports.append(types_pb2.NetworkPort(container_port=80, protocol="tcp",
                                             host_ip="127.0.0.1", host_port=8080))
        return d

    def CreateNetwork(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("CreateNetwork", request)
        return types_pb2.NetworkInfo(name=request.name, id="f" * 64, driver="bridge")

    def ListNetworks(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("ListNetworks", request)
        return types_pb2.NetworkListResponse(networks=[
            types_pb2.NetworkInfo(name="bridge", id="a" * 64, driver="bridge", builtin=True),
            types_pb2.NetworkInfo(name="app", id="b" * 64, driver="bridge",
                                  subnet="10.88.1.0/24", gateway="10.88.1.1")])

    def InspectNetwork(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("InspectNetwork", request)
        raise errors.NotFound(f"network {request.network} not found")

    def RemoveNetwork(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("RemoveNetwork", request)
        return engine_pb2.NetworkRemoveResponse()

    def ConnectNetwork(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("ConnectNetwork", request)
        return engine_pb2.NetworkConnectResponse()

    def DisconnectNetwork(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("DisconnectNetwork", request)
        return engine_pb2.NetworkDisconnectResponse()

    def RenameContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("RenameContainer", request)
        return engine_pb2.RenameContainerResponse()

    def ContainerChanges(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("ContainerChanges", request)
        return types_pb2.ContainerChangesResponse()

    def StatContainerPath(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("StatContainerPath", request)
        return types_pb2.ContainerPathStat()

    def CopyFromContainer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("CopyFromContainer", request)
        return iter(())

    def CopyToContainer(self, request_iterator, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("CopyToContainer", None)
        return engine_pb2.CopyToContainerResponse()

    def Events(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("Events", request)
        return iter(())

    def ContainerLogs(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("ContainerLogs", request)
        yield types_pb2.LogEntry(stream="stdout", data=b"hello\n")
        yield types_pb2.LogEntry(stream="stderr", data=b"\xffbad\n")

    # -- volumes: canned answers; tests/unit/cli/test_volumes.py checks the rendering

    def CreateVolume(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("CreateVolume", request)
        return types_pb2.Volume(name=request.name or "f" * 64, driver="local")

    def InspectVolume(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("InspectVolume", request)
        if request.name != "data":
            raise errors.NotFound(f"get {request.name}: no such volume")
        return types_pb2.Volume(name="data", driver="local", mountpoint="/v/data/_data",
                                 created_at="2024-01-01T00:00:00Z", labels={"a": "b"})

    def ListVolumes(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("ListVolumes", request)
        return types_pb2.VolumeListResponse(volumes=[
            types_pb2.Volume(name="zeta", driver="local"),
            types_pb2.Volume(name="data", driver="local")])

    def RemoveVolume(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("RemoveVolume", request)
        return engine_pb2.VolumeRemoveResponse()

    def PruneVolumes(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("PruneVolumes", request)
        return types_pb2.VolumePruneResponse(volumes=["old"], space_reclaimed=2048)

    def AttachContainerStream(self, request_iterator, context):  # type: ignore[no-untyped-def]  # noqa: N802
        start = next(request_iterator).start
        self._record("AttachContainerStream", start)
        data = b""
        for msg in request_iterator:
            if msg.WhichOneof("input") == "close_stdin":
                break
            data += msg.stdin
        yield engine_pb2.AttachEvent(output=types_pb2.LogEntry(stream="stdout", data=data))
        yield engine_pb2.AttachEvent(exit=engine_pb2.WaitContainerResponse(exit_code=0))

    def ExecContainer(self, request_iterator, context):  # type: ignore[no-untyped-def]  # noqa: N802
        start = next(request_iterator).start
        self._record("ExecContainer", start)
        if start.container != "web":
            raise errors.NotFound(f"No such container: {start.container}")
        yield types_pb2.ExecOutput(output=types_pb2.LogEntry(
            stream="stdout", data=b"out\n"))
        if start.cmd[0] == "nosuch":
            yield types_pb2.ExecOutput(exit=types_pb2.ExecExit(
                exit_code=127, error='exec: "nosuch": executable file not found in $PATH'))
            return
        yield types_pb2.ExecOutput(exit=types_pb2.ExecExit(exit_code=4))


@pytest.fixture
def gateway() -> Iterator[tuple[FakeEngine, str]]:
    # Unix socket paths are limited to 108 bytes: keep it short.
    tmp = Path(tempfile.mkdtemp(prefix="mucli-", dir="/tmp"))
    fake = FakeEngine()
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[ErrorInterceptor()])
    engine_pb2_grpc.add_EngineServicer_to_server(fake, server)
    server.add_insecure_port(f"unix:{tmp / 'gw.sock'}")
    server.start()
    try:
        yield fake, f"unix://{tmp / 'gw.sock'}"
    finally:
        server.stop(0).wait()
        shutil.rmtree(tmp, ignore_errors=True)


class Out(io.TextIOWrapper):
    """A text stream with a byte buffer, like sys.stdout."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8")

    def value(self) -> bytes:
        self.flush()
        return self.buffer.getvalue()  # type: ignore[attr-defined,no-any-return]


def cli(host: str, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = Out(), Out()
    code = run(list(argv), out=out, err=err, environ={"MUELLE_HOST": host, **(env or {})})
    return code, out.value().decode(errors="replace"), err.value().decode(errors="replace")


def test_run_attached_streams_and_exits_with_the_container_code(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    fake.exit_code = 3
    code, out, err = cli(host, "run", "--rm", "-e", "HOME", "busybox", "sh", "-c", "x",
                         env={"HOME": "/root"})
    assert (code, out, err) == (3, "out\n", "err\n")
    names = [c[0] for c in fake.calls]
    assert names == ["CreateContainer", "AttachContainer"]
    create, attach = fake.calls[0][1], fake.calls[1][1]
    assert list(create.cmd.values) == ["sh", "-c", "x"] and create.auto_remove
    assert list(create.env) == ["HOME=/root"]
    assert attach.container == CID and attach.start


def test_run_detached_prints_the_id(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    code, out, err = cli(host, "run", "-d", "--name", "web", "busybox")
    assert (code, out, err) == (0, CID + "\n", "")
    assert [c[0] for c in fake.calls] == ["CreateContainer", "StartContainer"]


@pytest.mark.parametrize(("error", "code"), [
    (errors.FailedPrecondition('exec: "nope": executable file not found in $PATH'), 127),
    (errors.FailedPrecondition('exec: "/etc/passwd": permission denied'), 126),
    (errors.NotFound("No such image: 127.0.0.1:1/never:1"), 125),
    (errors.AlreadyExists('Conflict. The container name "/web" is already in use'), 125),
])
def test_run_failures_exit_like_docker(gateway, error: Exception, code: int) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    fake.fail["CreateContainer" if code == 125 else "AttachContainer"] = error
    got, out, err = cli(host, "run", "--pull", "never", "busybox", "nope")
    assert got == code
    assert err == f"Error response from daemon: {error}\n"


PULLED = ("Pulling from library/busybox\naaaaaaaaaaaa: Downloading\naaaaaaaaaaaa: Pull complete\n"
          f"Digest: sha256:{'d' * 64}\nStatus: Downloaded newer image for busybox:latest\n"
          "docker.io/library/busybox:latest\n")


@pytest.mark.parametrize("verb", ["run", "create"])
def test_a_missing_image_is_pulled_first(gateway, verb: str) -> None:  # type: ignore[no-untyped-def]
    """docker's words, then the pull's progress, on stderr; stdout as without a pull."""
    fake, host = gateway
    fake.fail_once["CreateContainer"] = errors.NotFound("No such image: busybox")
    code, out, err = cli(host, verb, "-d" if verb == "run" else "--name=x", "busybox")
    assert (code, out) == (0, CID + "\n")
    assert err == "Unable to find image 'busybox:latest' locally\n" + PULLED
    names = [c[0] for c in fake.calls]
    assert names[:3] == ["CreateContainer", "PullImage", "CreateContainer"]
    assert fake.calls[1][1].reference == "busybox"
    assert not fake.calls[1][1].HasField("platform")


def test_pull_always_and_never(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    code, out, err = cli(host, "create", "--pull=always", "busybox:1")
    assert (code, out, err) == (0, CID + "\n", PULLED)
    assert [c[0] for c in fake.calls] == ["PullImage", "CreateContainer"]
    fake.calls.clear()
    fake.fail["CreateContainer"] = errors.NotFound("No such image: busybox:1")
    code, out, err = cli(host, "create", "--pull", "never", "busybox:1")
    assert (code, err) == (125, "Error response from daemon: No such image: busybox:1\n")
    assert [c[0] for c in fake.calls] == ["CreateContainer"]


def test_other_not_found_errors_do_not_pull(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    fake.fail["CreateContainer"] = errors.NotFound("network app not found")
    code, _, err = cli(host, "create", "busybox")
    assert (code, err) == (125, "Error response from daemon: network app not found\n")
    assert [c[0] for c in fake.calls] == ["CreateContainer"]


def test_a_bad_pull_policy_or_platform_is_a_usage_error(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    code, _, err = cli(host, "run", "--pull", "sometimes", "busybox")
    assert code == 125
    assert "invalid pull option: 'sometimes': must be one of" in err
    code, _, err = cli(host, "create", "--platform", "linux//arm64", "busybox")
    assert code == 125 and "unknown operating system or architecture" in err
    code, _, err = cli(host, "pull", "--platform", "a/b/c/d", "busybox")
    assert code == 1 and "unknown operating system or architecture" in err
    assert fake.calls == []


def test_platform_goes_to_pull_and_create(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    fake.fail_once["CreateContainer"] = errors.NotFound(
        "image with reference busybox was found but does not match the specified platform:"
        " wanted linux/arm64, actual: linux/amd64")
    code, out, err = cli(host, "create", "--platform", "linux/aarch64", "busybox")
    assert code == 0 and err.startswith("Unable to find image 'busybox:latest' locally\n")
    create, pull = fake.calls[0][1], fake.calls[1][1]
    for request in (create, pull):
        assert (request.platform.os, request.platform.architecture,
                request.platform.variant) == ("linux", "arm64", "")
    fake.calls.clear()
    assert cli(host, "pull", "--platform", "linux/arm/v6", "busybox")[0] == 0
    assert fake.calls[0][1].platform.variant == "v6"


def test_create_prints_id_and_fails_with_125(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    assert cli(host, "create", "busybox") == (0, CID + "\n", "")
    fake.fail["CreateContainer"] = errors.InvalidArgument("no command specified")
    assert cli(host, "create", "busybox")[0] == 125


def test_other_verbs_fail_with_1_and_continue(gateway) -> None:  # type: ignore[no-untyped-def]
    _, host = gateway
    code, out, err = cli(host, "rm", "-f", "ghost", "web")
    assert code == 1
    assert out == "web\n"
    assert err == "Error response from daemon: No such container: ghost\n"


def test_internal_errors_have_no_traceback(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    fake.fail["ListContainers"] = RuntimeError("boom")
    code, out, err = cli(host, "ps")
    assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1


def test_unreachable_gateway() -> None:
    host = "unix:///tmp/muelle-no-such-dir/gw.sock"
    for argv in (["ps"], ["run", "busybox"], ["pull", "busybox"]):
        code, out, err = cli(host, *argv)
        assert code == 1, argv
        assert err == f"Cannot connect to the muelle engine at {host}. Is it running?\n"


def test_usage_errors() -> None:
    code, _, err = cli("unix:///nowhere", "run", "-it", "busybox")
    assert code == 125 and err == "muelle: the input device is not a TTY\n"
    code, _, err = cli("unix:///nowhere", "bogus")
    assert code == 125 and err.startswith("muelle: ") and "Traceback" not in err
    code, _, err = cli("unix:///nowhere", "run", "-m", "lots", "busybox")
    assert code == 125 and "invalid size" in err


def test_ps_table_and_quiet(gateway) -> None:  # type: ignore[no-untyped-def]
    _, host = gateway
    code, out, _ = cli(host, "ps")
    header, row = out.splitlines()
    assert header.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                              "PORTS", "NAMES"]
    assert row.startswith(CID[:12] + "   busybox   ")
    assert '"sh -c while true; d…"' in row and "Up 3 seconds" in row and row.endswith("web")
    assert header.index("STATUS") == row.index("Up 3 seconds")
    assert header.index("PORTS") == row.index("127.0.0.1:8080->80/tcp")
    assert cli(host, "ps", "-aq") == (0, CID[:12] + "\n", "")


def test_ps_of_many_rows_and_a_filter(gateway) -> None:  # type: ignore[no-untyped-def]
    """Every row in the gateway's order, each CREATED from its own time (the CLI's fast
    parse of the gateway's RFC 3339), and a filter still applies."""
    fake, host = gateway
    now = time.time_ns()
    fake.more_containers = [engine_pb2.ContainerSummary(
        id=f"{i:012x}" + "0" * 52, name=f"many-{i}", image="busybox", command="sleep 100000",
        created=rfc3339_nano(now - i * 60_000_000_000), state="running",
        status="Up 2 minutes") for i in range(2, 300)]
    code, out, _ = cli(host, "ps")
    rows = [line.split("   ") for line in out.splitlines()[2:]]
    assert code == 0 and len(rows) == 298
    for i, row in zip(range(2, 300), rows, strict=True):
        cells = [cell.strip() for cell in row if cell.strip()]
        assert cells == [f"{i:012x}", "busybox", '"sleep 100000"',
                         f"{human_duration(i * 60)} ago", "Up 2 minutes", f"many-{i}"]
    code, out, _ = cli(host, "ps", "--filter", "name=many-29$")
    assert code == 0 and [line.split()[-1] for line in out.splitlines()[1:]] == ["many-29"]


def test_images_table(gateway) -> None:  # type: ignore[no-untyped-def]
    _, host = gateway
    code, out, _ = cli(host, "images")
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["busybox", "latest", "ab" * 6]
    assert lines[2].split()[:2] == ["127.0.0.1:5000/demo/busybox", "1"]
    assert lines[1].endswith("1.23kB")
    assert cli(host, "images", "-q") == (0, "ab" * 6 + "\n", "")


def test_pull_without_tty_prints_phase_changes(gateway) -> None:  # type: ignore[no-untyped-def]
    _, host = gateway
    code, out, _ = cli(host, "pull", "busybox")
    assert code == 0
    assert out.splitlines() == [
        "Pulling from library/busybox",
        "aaaaaaaaaaaa: Downloading",
        "aaaaaaaaaaaa: Pull complete",
        "Digest: sha256:" + "d" * 64,
        "Status: Downloaded newer image for busybox:latest",
        "docker.io/library/busybox:latest",
    ]


def test_pull_on_a_tty_redraws_in_place() -> None:
    out = io.StringIO()
    printer = PullPrinter(out, tty=True)
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    for digest, phase, cur in ((a, "Downloading", 1_200_000), (b, "Waiting", 0),
                               (a, "Downloading", 3_400_000)):
        printer.feed(types_pb2.PullProgress(layer=types_pb2.LayerProgress(
            digest=digest, phase=phase, current=cur, total=3_400_000)))
    text = out.getvalue()
    assert text.startswith("aaaaaaaaaaaa: Downloading  1.2MB/3.4MB\nbbbbbbbbbbbb: Waiting\n")
    # Two lines up, clear, rewrite layer a, one line back down.
    assert text.endswith("\x1b[2A\r\x1b[2Kaaaaaaaaaaaa: Downloading  3.4MB/3.4MB\n\x1b[1B")


def test_inspect_containers_then_images(gateway) -> None:  # type: ignore[no-untyped-def]
    _, host = gateway
    code, out, err = cli(host, "inspect", "web", "busybox", "nothing")
    assert code == 1 and err == "Error: No such object: nothing\n"
    found = json.loads(out)
    assert found[0]["State"]["Pid"] == 42 and found[0]["State"]["Running"] is True
    assert found[0]["Name"] == "/web" and found[0]["Path"] == "sleep"
    assert found[0]["Config"]["Entrypoint"] is None
    assert found[0]["Config"]["Cmd"] == ["sleep", "9"]
    assert found[1]["Id"] == IMG and found[1]["Config"]["Cmd"] == ["sh"]


def test_logs_are_written_byte_for_byte(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    out, err = Out(), Out()
    assert run(["logs", "--tail", "5", "-t", "web"], out=out, err=err,
               environ={"MUELLE_HOST": host}) == 0
    assert out.value() == b"hello\n" and err.value() == b"\xffbad\n"
    request = fake.calls[-1][1]
    assert request.tail == 5 and request.timestamps and request.stdout and request.stderr


def test_wait_stop_kill_start(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    fake.exit_code = 7
    assert cli(host, "wait", "web") == (0, "7\n", "")
    assert cli(host, "stop", "-t", "2", "web") == (0, "web\n", "")
    assert fake.calls[-1][1].timeout == 2 and fake.calls[-1][1].HasField("timeout")
    cli(host, "stop", "web")
    assert not fake.calls[-1][1].HasField("timeout")
    assert cli(host, "kill", "-s", "HUP", "web") == (0, "web\n", "")
    assert fake.calls[-1][1].signal == "HUP"
    assert cli(host, "start", "web") == (0, "web\n", "")
    code, out, _ = cli(host, "start", "-a", "web")
    assert code == 7 and out == "out\n"


def test_rmi_and_version(gateway) -> None:  # type: ignore[no-untyped-def]
    _, host = gateway
    code, out, _ = cli(host, "rmi", "busybox")
    assert code == 0 and out == f"Untagged: busybox\nDeleted: {IMG}\n"
    code, out, _ = cli(host, "version")
    assert code == 0 and "Server:" in out and "shim:" in out and "unreachable" in out


def test_pause_unpause_restart(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    code, out, _ = cli(host, "pause", "web", "db")
    assert code == 0 and out == "web\ndb\n"
    code, out, _ = cli(host, "unpause", "web")
    assert code == 0 and out == "web\n"
    code, out, _ = cli(host, "restart", "-t", "3", "web")
    assert code == 0 and out == "web\n" and fake.calls[-1][1].timeout == 3
    code, _, _ = cli(host, "restart", "db")
    assert not fake.calls[-1][1].HasField("timeout")


def test_stats_no_stream_and_top(gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("clients.cli.stats.SAMPLE", 0.0)
    fake, host = gateway
    code, out, _ = cli(host, "stats", "--no-stream")
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"]
    # 125 ms of CPU in 500 ms of wall time: 25% of one CPU
    assert row.split()[:3] == [CID[:12], "web", "25.00%"]
    assert "8MiB / 64MiB" in row and "12.50%" in row and row.split()[-1] == "3"
    code, out, _ = cli(host, "top", "web", "aux")
    assert code == 0 and fake.calls[-1][1].ps_args == "aux"
    assert out.splitlines()[1].split() == ["root", "4242", "sleep", "100"]


def test_info(gateway) -> None:  # type: ignore[no-untyped-def]
    _, host = gateway
    code, out, _ = cli(host, "info")
    assert code == 0
    lines = out.splitlines()
    for expected in (" Containers: 3", "  Paused: 1", " Images: 2", " Runtimes: muelle runc",
                     " Default Runtime: muelle", " CPUs: 2", " Total Memory: 24GiB",
                     " Cgroup Version: 1"):
        assert expected in lines, expected


def test_image_prune_prompts_unless_forced(gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, _ = cli(host, "image", "prune")
    assert code == 0 and "dangling" in out and not fake.calls
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out, _ = cli(host, "image", "prune", "-a")
    assert code == 0 and fake.calls[-1][1].all
    code, out, _ = cli(host, "image", "prune", "-f")
    assert not fake.calls[-1][1].all
    assert out == (f"Deleted Images:\nuntagged: busybox:old\ndeleted: {IMG}\n\n"
                   "Total reclaimed space: 2.5MB\n")


def test_system_df(gateway) -> None:  # type: ignore[no-untyped-def]
    _, host = gateway
    code, out, _ = cli(host, "system", "df")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert lines[1].split() == ["Images", "2", "1", "4MB", "1MB", "(25%)"]
    assert lines[2].split() == ["Containers", "1", "1", "100B", "0B", "(0%)"]
    code, out, _ = cli(host, "system", "df", "-v")
    rows = [line.split() for line in out.splitlines()]
    assert ["busybox", "1", "abababababab", "4MB", "1MB", "3MB", "1"] in rows
    assert [CID[:12], "abababababab", "100B", "running", "web"] in rows


def test_system_check(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    code, out, _ = cli(host, "system", "check")
    assert code == 0 and "no problems found" in out
    fake.broken = ("SystemCheck",)
    code, out, err = cli(host, "system", "check")
    assert code == 1 and out == f"blob {IMG}: bad\n" and "1 problem(s) found" in err
    code, _, err = cli(host, "system", "nope")
    assert code != 0 and err.count("\n") <= 2


def test_save_and_load(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    target = tmp_path / "out.tar"
    code, out, _ = cli(host, "save", "-o", str(target), "busybox:1", "other")
    assert code == 0 and out == "" and target.read_bytes() == b"tar-bytes"
    assert list(fake.calls[-1][1].references) == ["busybox:1", "other"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.tar"]  # no temp file left
    code, out, _ = cli(host, "save", "busybox:1")
    assert code == 0 and out == "tar-bytes"  # stdout is not a terminal here
    code, out, _ = cli(host, "load", "-i", str(target))
    assert code == 0 and fake.calls[-1] == ("LoadImages", b"tar-bytes")
    assert out == f"Loaded image: busybox:1\nLoaded image ID: {IMG}\n"
    code, _, err = cli(host, "load", "-i", str(tmp_path / "absent.tar"))
    assert code == 1 and err.count("\n") == 1 and "absent.tar" in err
def test_push_prints_like_docker_push(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    code, out, err = cli(host, "push", "r:5000/a/b:2")
    assert (code, err) == (0, "")
    assert out == ("The push refers to repository [r:5000/a/b]\n"
                   f"{'b' * 12}: Preparing\n{'b' * 12}: Pushing\n{'b' * 12}: Pushed\n"
                   f"2: digest: sha256:{'e' * 64} size: 527\n")
    assert cli(host, "tag", "busybox", "r:5000/a/b:2")[:2] == (0, "")
    assert fake.calls[-1][1].source == "busybox"


def test_login_password_stdin_and_logout(gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    monkeypatch.setattr("sys.stdin", io.StringIO("right\n"))
    code, out, err = cli(host, "login", "-u", "me", "--password-stdin", "r:5000")
    assert (code, out, err) == (0, "Login Succeeded\n", "")
    req = fake.calls[-1][1]
    assert (req.server, req.username, req.password) == ("r:5000", "me", "right")
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    code, out, err = cli(host, "login", "-u", "me", "--password-stdin", "r:5000")
    assert code == 1 and out == ""
    assert err == "Error response from daemon: unauthorized: incorrect username or password\n"
    code, out, err = cli(host, "login", "--password-stdin", "r:5000")
    assert code == 1 and "--username" in err and len(err.splitlines()) == 1
    assert cli(host, "logout", "r:5000")[:2] == (0, "Removing login credentials for r:5000\n")


def test_network_verbs_and_port(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    assert cli(host, "network", "create", "--subnet", "10.88.1.0/24", "app") == \
        (0, "f" * 64 + "\n", "")
    assert fake.calls[-1][1].subnet == "10.88.1.0/24"
    code, out, _ = cli(host, "network", "ls")
    assert code == 0 and out.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER",
                                                         "SUBNET"]
    assert "10.88.1.0/24" in out.splitlines()[2]
    code, _, err = cli(host, "network", "inspect", "nope")
    assert code == 1 and "network nope not found" in err and "Traceback" not in err
    assert cli(host, "network", "rm", "app") == (0, "app\n", "")
    assert cli(host, "network", "connect", "--alias", "db", "app", "web")[0] == 0
    assert list(fake.calls[-1][1].aliases) == ["db"]
    assert cli(host, "port", "web") == (0, "80/tcp -> 127.0.0.1:8080\n", "")
    assert cli(host, "port", "web", "80") == (0, "127.0.0.1:8080\n", "")
    assert cli(host, "port", "web", "81/udp")[0] == 1


def test_exec_streams_output_and_exit_codes(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    code, out, err = cli(host, "exec", "-e", "A=1", "-u", "app", "-w", "/tmp", "web",
                         "sh", "-c", "x")
    assert (code, out, err) == (4, "out\n", "")
    start = fake.calls[-1][1]
    assert list(start.cmd) == ["sh", "-c", "x"] and list(start.env) == ["A=1"]
    assert (start.user, start.working_dir, start.interactive) == ("app", "/tmp", False)
    code, out, err = cli(host, "exec", "web", "nosuch")
    assert code == 127 and err.count("\n") == 1 and "nosuch" in err
    code, out, err = cli(host, "exec", "db", "true")
    assert (code, out) == (1, "") and err == "Error response from daemon: No such container: db\n"
def test_export_import_commit(gateway, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    target = tmp_path / "rootfs.tar"
    assert cli(host, "export", "-o", str(target), "web") == (0, "", "")
    assert target.read_bytes() == b"rootfs-tar" and fake.calls[-1][1].container == "web"
    assert cli(host, "export", "web")[:2] == (0, "rootfs-tar")
    assert cli(host, "import", "-m", "hi", str(target), "demo:1") == (0, IMG + "\n", "")
    assert fake.calls[-1] == ("ImportImage", ("demo:1", "hi", b"rootfs-tar"))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"from-stdin")))
    assert cli(host, "import", "-")[:2] == (0, IMG + "\n")
    assert fake.calls[-1] == ("ImportImage", ("", "", b"from-stdin"))
    code, _, err = cli(host, "import", str(tmp_path / "absent.tar"))
    assert code == 1 and err.count("\n") == 1 and "absent.tar" in err
    assert cli(host, "commit", "-a", "me", "-m", "msg", "web", "demo:2") == (0, IMG + "\n", "")
    req = fake.calls[-1][1]
    assert (req.container, req.reference, req.author, req.comment) == ("web", "demo:2", "me",
                                                                       "msg")
