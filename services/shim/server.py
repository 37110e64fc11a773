"""gRPC servicer for muelle.shim.v1.Shim: decode, call the Shim core, encode."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
from muelle.shim.v1 import shim_pb2, shim_pb2_grpc
from muelle.types.v1 import types_pb2

from services.shim import volume_mounts
from services.shim.exec import ExecRequest, Exit
from services.shim.network.defs import Network
from services.shim.shim import Shim, Status
from services.shim.volumes import Volume
from vocab.errors import InvalidArgument


def _status(st: Status, net: dict[str, Any] | None = None) -> shim_pb2.ContainerStatus:
    out = shim_pb2.ContainerStatus(
        id=st.id, status=st.status, pid=st.pid, exit_code=st.exit_code,
        oom_killed=st.oom_killed, created_at=st.created_at, started_at=st.started_at,
        finished_at=st.finished_at, runtime=st.runtime, bundle=st.bundle, error=st.error,
        volume_mounts=volume_mounts.to_proto(st.volume_mounts),
        restart_count=st.restart_count)
    if net:
        out.network_mode = net.get("mode", "")
        for name, ep in net.get("endpoints", {}).items():
            out.networks.append(types_pb2.NetworkEndpoint(
                network=name, network_id=ep.get("network_id", ""), ip_address=ep["ip"],
                prefix_len=ep["prefixlen"], gateway=ep["gateway"],
                aliases=ep.get("aliases", []), interface=ep["ifname"]))
        for p in net.get("published", []):
            out.ports.append(types_pb2.NetworkPort(**p))
    return out


def _network(net: Network, containers: list[str]) -> types_pb2.NetworkInfo:
    return types_pb2.NetworkInfo(
        name=net.name, id=net.id, driver="bridge", subnet=net.subnet, gateway=net.gateway,
        bridge=net.bridge, created=net.created, containers=containers, builtin=net.builtin)


def _volume(v: Volume) -> types_pb2.Volume:
    return types_pb2.Volume(
        name=v.name, driver="local", mountpoint=v.mountpoint, created_at=v.created_at,
        labels=v.labels, anonymous=v.anonymous, containers=v.containers)


class ShimServicer(shim_pb2_grpc.ShimServicer):
    def __init__(self, shim: Shim) -> None:
        self.shim = shim

    def Create(self, request: shim_pb2.CreateRequest,
               context: grpc.ServicerContext) -> shim_pb2.CreateResponse:
        bundle = self.shim.create(request.id, request.spec, request.rootfs, request.runtime)
        return shim_pb2.CreateResponse(bundle=bundle)

    def Start(self, request: shim_pb2.StartRequest,
              context: grpc.ServicerContext) -> shim_pb2.StartResponse:
        pid = self.shim.start(request.id, unless_running=request.unless_running)
        if pid is None:
            return shim_pb2.StartResponse(was_running=True)
        return shim_pb2.StartResponse(pid=pid)

    def Kill(self, request: shim_pb2.KillRequest,
             context: grpc.ServicerContext) -> shim_pb2.KillResponse:
        self.shim.kill(request.id, request.signal)
        return shim_pb2.KillResponse()

    def Stop(self, request: shim_pb2.StopRequest,
             context: grpc.ServicerContext) -> shim_pb2.ContainerStatus:
        return _status(self.shim.stop(request.id, request.signal, request.timeout,
                                      cancelled=lambda: not context.is_active()))

    def Wait(self, request: shim_pb2.WaitRequest,
             context: grpc.ServicerContext) -> shim_pb2.ContainerStatus:
        return _status(self.shim.wait(request.id, cancelled=lambda: not context.is_active()))

    def State(self, request: shim_pb2.StateRequest,
              context: grpc.ServicerContext) -> shim_pb2.ContainerStatus:
        out = _status(self.shim.state(request.id), self.shim.networks.read(request.id))
        if request.runtime_spec:
            out.runtime_spec = self.shim.runtime_spec(request.id)
        return out

    def List(self, request: shim_pb2.ListRequest,
             context: grpc.ServicerContext) -> shim_pb2.ListResponse:
        return shim_pb2.ListResponse(
            containers=[_status(s, self.shim.networks.peek(s.id)) for s in self.shim.list()])

    def Delete(self, request: shim_pb2.DeleteRequest,
               context: grpc.ServicerContext) -> shim_pb2.DeleteResponse:
        last = self.shim.delete(request.id, request.force, request.remove_volumes)
        return shim_pb2.DeleteResponse(status=_status(last))

    def Logs(self, request: shim_pb2.LogsRequest,
             context: grpc.ServicerContext) -> Iterator[types_pb2.LogEntry]:
        entries = self.shim.io.logs(request.id, follow=request.follow, tail=request.tail,
                                 since=request.since, stdout=request.stdout,
                                 stderr=request.stderr,
                                 cancelled=lambda: not context.is_active())
        for entry in entries:
            yield types_pb2.LogEntry(stream=entry.stream, data=entry.data, time=entry.time)

    def Runtimes(self, request: shim_pb2.RuntimesRequest,
                 context: grpc.ServicerContext) -> shim_pb2.RuntimesResponse:
        infos, default = self.shim.list_runtimes()
        return shim_pb2.RuntimesResponse(
            runtimes=[types_pb2.RuntimeInfo(name=i.name, path=i.path, version=i.version)
                      for i in infos],
            default=default)

    def Pause(self, request: shim_pb2.PauseRequest,  # noqa: N802
              context: grpc.ServicerContext) -> shim_pb2.PauseResponse:
        self.shim.pause(request.id)
        return shim_pb2.PauseResponse()

    def Resume(self, request: shim_pb2.ResumeRequest,  # noqa: N802
               context: grpc.ServicerContext) -> shim_pb2.ResumeResponse:
        self.shim.resume(request.id)
        return shim_pb2.ResumeResponse()

    def Update(self, request: shim_pb2.UpdateRequest,  # noqa: N802
               context: grpc.ServicerContext) -> shim_pb2.UpdateResponse:
        return shim_pb2.UpdateResponse(
            resources=self.shim.update(request.id, request.resources))
    def CreateVolume(self, request: types_pb2.VolumeCreateRequest,
                     context: grpc.ServicerContext) -> types_pb2.Volume:
        vol, _ = self.shim.volumes.create(request.name, dict(request.labels))
        return _volume(vol)

    def InspectVolume(self, request: types_pb2.VolumeInspectRequest,
                      context: grpc.ServicerContext) -> types_pb2.Volume:
        return _volume(self.shim.volumes.get(request.name))

    def ListVolumes(self, request: shim_pb2.VolumeListRequest,
                    context: grpc.ServicerContext) -> types_pb2.VolumeListResponse:
        volumes = [_volume(v) for v in self.shim.volumes.list()]
        if request.with_size:
            for vol in volumes:
                vol.size = self.shim.volumes.size(vol.name)
        return types_pb2.VolumeListResponse(volumes=volumes)

    def RemoveVolume(self, request: types_pb2.VolumeRemoveRequest,
                     context: grpc.ServicerContext) -> shim_pb2.VolumeRemoveResponse:
        self.shim.volumes.remove(request.name, request.force)
        return shim_pb2.VolumeRemoveResponse()

    def PruneVolumes(self, request: types_pb2.VolumePruneRequest,
                     context: grpc.ServicerContext) -> types_pb2.VolumePruneResponse:
        names, freed = self.shim.volumes.prune(request.all)
        return types_pb2.VolumePruneResponse(volumes=names, space_reclaimed=freed)

    def Stats(self, request: shim_pb2.StatsRequest,  # noqa: N802
              context: grpc.ServicerContext) -> shim_pb2.StatsResponse:
        return shim_pb2.StatsResponse(stats=[
            types_pb2.ContainerStats(id=cid, **vars(c))
            for cid, c in self.shim.io.stats(list(request.ids))])

    def Top(self, request: shim_pb2.TopRequest,  # noqa: N802
            context: grpc.ServicerContext) -> types_pb2.TopResponse:
        titles, rows = self.shim.io.top(request.id, request.ps_args)
        return types_pb2.TopResponse(
            titles=titles, processes=[types_pb2.TopRow(fields=r) for r in rows])

    def CopyTo(self, request_iterator: Iterator[shim_pb2.CopyToInput],  # noqa: N802
               context: grpc.ServicerContext) -> shim_pb2.CopyToResponse:
        first = next(request_iterator, shim_pb2.CopyToInput())
        if not first.HasField("start"):
            raise InvalidArgument("the first message of CopyTo must be start")
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            for message in request_iterator:
                spool.write(message.data)
            spool.seek(0)
            self.shim.copy_to(first.start.id, first.start.path, spool,
                              first.start.copy_uid_gid, first.start.no_overwrite_dir_non_dir)
        return shim_pb2.CopyToResponse()

    def StatPath(self, request: shim_pb2.PathRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> shim_pb2.PathStat:
        stat = self.shim.stat_path(request.id, request.path)
        if stat is None:
            return shim_pb2.PathStat(through_mounts=False)
        return shim_pb2.PathStat(through_mounts=True, stat=stat)

    def ReadPath(self, request: shim_pb2.PathRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> Iterator[types_pb2.ArchiveChunk]:
        for data in self.shim.read_path(request.id, request.path):
            yield types_pb2.ArchiveChunk(data=data)

    def UpdateRestartPolicy(  # noqa: N802
            self, request: shim_pb2.UpdateRestartPolicyRequest,
            context: grpc.ServicerContext) -> shim_pb2.UpdateRestartPolicyResponse:
        self.shim.update_restart_policy(request.id, request.restart_policy)
        return shim_pb2.UpdateRestartPolicyResponse()

    def NetworkCreate(self, request: types_pb2.NetworkCreateRequest,
                      context: grpc.ServicerContext) -> types_pb2.NetworkInfo:
        return _network(self.shim.networks.create_network(request.name, request.subnet), [])

    def NetworkList(self, request: shim_pb2.NetworkListRequest,
                    context: grpc.ServicerContext) -> types_pb2.NetworkListResponse:
        nets = self.shim.networks
        return types_pb2.NetworkListResponse(
            networks=[_network(n, nets.members(n)) for n in nets.networks()])

    def NetworkInspect(self, request: types_pb2.NetworkInspectRequest,
                       context: grpc.ServicerContext) -> types_pb2.NetworkInfo:
        net = self.shim.networks.find(request.network)
        return _network(net, self.shim.networks.members(net))

    def NetworkRemove(self, request: types_pb2.NetworkRemoveRequest,
                      context: grpc.ServicerContext) -> shim_pb2.NetworkRemoveResponse:
        self.shim.networks.remove_network(request.network)
        return shim_pb2.NetworkRemoveResponse()

    def NetworkConnect(self, request: shim_pb2.NetworkConnectRequest,
                       context: grpc.ServicerContext) -> shim_pb2.NetworkConnectResponse:
        self.shim.networks.connect(
            request.id, request.network, list(request.aliases),
            [(link.partition(":")[0], link.partition(":")[2]) for link in request.links
             if ":" in link])
        return shim_pb2.NetworkConnectResponse()

    def NetworkDisconnect(self, request: shim_pb2.NetworkDisconnectRequest,
                          context: grpc.ServicerContext,
                          ) -> shim_pb2.NetworkDisconnectResponse:
        self.shim.networks.disconnect(request.id, request.network)
        return shim_pb2.NetworkDisconnectResponse()

    def Exec(self, request_iterator: Iterator[types_pb2.ExecInput],
             context: grpc.ServicerContext) -> Iterator[types_pb2.ExecOutput]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("input") != "start":
            raise InvalidArgument("the first Exec message must be start")
        s = first.start
        req = ExecRequest(args=list(s.cmd), env=list(s.env), user=s.user, cwd=s.working_dir,
                          stdin=s.interactive, tty=s.tty, rows=s.console_size.rows,
                          cols=s.console_size.cols, detach=s.detach)
        # ExecStart.timeout_seconds: killed like a client that left, then reported.
        deadline = time.monotonic() + s.timeout_seconds if s.timeout_seconds else None

        def timed_out() -> bool:
            return deadline is not None and time.monotonic() >= deadline

        for event in self.shim.io.exec(s.container, req, _stdin(request_iterator),
                                    cancelled=lambda: not context.is_active() or timed_out()):
            if isinstance(event, Exit):
                yield types_pb2.ExecOutput(exit=types_pb2.ExecExit(
                    exit_code=event.exit_code, error=event.error,
                    timed_out=timed_out() and event.exit_code == 137))
            else:
                yield types_pb2.ExecOutput(output=types_pb2.LogEntry(
                    stream=event.stream, data=event.data, time=event.time))

    def Attach(self, request_iterator: Iterator[shim_pb2.AttachInput],
               context: grpc.ServicerContext) -> Iterator[types_pb2.LogEntry]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("input") != "start":
            raise InvalidArgument("the first Attach message must be start")
        start = first.start
        chunks = _StdinBytes(request_iterator)
        if not start.output:
            if start.stdin:
                self.shim.io.write_stdin(start.id, chunks, lambda: chunks.closed)
            return
        entries = self.shim.io.logs(start.id, follow=True, since=start.since,
                                 cancelled=lambda: not context.is_active())
        if start.stdin:
            self.shim.state(start.id)  # NOT_FOUND before the thread starts

            def feed() -> None:
                with contextlib.suppress(Exception):  # reported to nobody: output goes on
                    self.shim.io.write_stdin(start.id, chunks, lambda: chunks.closed)

            threading.Thread(target=feed, name="attach-stdin", daemon=True).start()
        for entry in entries:
            yield types_pb2.LogEntry(stream=entry.stream, data=entry.data, time=entry.time)


def _stdin(inputs: Iterator[types_pb2.ExecInput],
           ) -> Iterator[bytes | tuple[int, int] | None]:
    """stdin chunks of an Exec input stream; None at close_stdin; (rows, cols) resizes."""
    for msg in inputs:
        kind = msg.WhichOneof("input")
        if kind == "stdin":
            yield msg.stdin
        elif kind == "resize":
            yield (msg.resize.rows, msg.resize.cols)
        elif kind == "close_stdin":
            yield None
            return


class _StdinBytes:
    """stdin chunks of an Attach input stream, until close_stdin (then ``closed``) or its
    end (a detach)."""

    def __init__(self, inputs: Iterator[shim_pb2.AttachInput]) -> None:
        self.inputs = inputs
        self.closed = False

    def __iter__(self) -> Iterator[bytes | tuple[int, int]]:
        for msg in self.inputs:
            kind = msg.WhichOneof("input")
            if kind == "stdin":
                yield msg.stdin
            elif kind == "resize":
                yield (msg.resize.rows, msg.resize.cols)
            elif kind == "close_stdin":
                self.closed = True
                return
