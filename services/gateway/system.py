"""`image prune`, `system df`, `save` and `load`: the image store does the
work; the gateway adds what only it knows (container names and whether they run).

save/load bytes flow CLI <-> gateway <-> imagestore as gRPC streams of chunks, one chunk
in flight per hop: the CLI may run on another host than the engine (TCP + TLS), so a
path on the client's disk would mean nothing to the image store."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from muelle.engine.v1 import engine_pb2
from muelle.images.v1 import images_pb2
from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.gateway.build import relay_archive
from services.gateway.records import Records
from vocab.platform import host_arch
from vocab.version import VERSION

# the neighbours' generated stubs, as connect() returns them (typing only)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from muelle.images.v1 import images_pb2_grpc
    from muelle.shim.v1 import shim_pb2_grpc

RUNNING = ("running", "paused")


def prune_images(images: images_pb2_grpc.ImagesStub, all: bool,
                 keep: Iterable[str] = ()) -> types_pb2.PruneImagesResponse:
    return images.Prune(types_pb2.PruneImagesRequest(all=all, keep=sorted(keep)))


def system_df(images: images_pb2_grpc.ImagesStub,
              shim: shim_pb2_grpc.ShimStub,
              records: Records) -> engine_pb2.SystemDfResponse:
    du = images.DiskUsage(images_pb2.DiskUsageRequest())
    states = {s.id: s.status for s in shim.List(shim_pb2.ListRequest()).containers}
    names = {r.id: r.name for r in records.all(include_unready=True)}
    out = engine_pb2.SystemDfResponse()
    out.images.extend(du.images)
    for c in du.containers:
        state = states.get(c.id, "")
        state = "exited" if state in ("stopped", "") else state
        out.containers.append(engine_pb2.DfContainer(
            id=c.id, name=names.get(c.id, ""), image_id=c.image_id, size=c.size, state=state,
            inodes=c.inodes))
    out.volumes.extend(shim.ListVolumes(shim_pb2.VolumeListRequest(with_size=True)).volumes)
    running = [c for c in out.containers if c.state in RUNNING]
    out.summary.append(engine_pb2.DfSummary(
        type="Images", total=len(out.images),
        active=sum(1 for i in out.images if i.containers), size=du.layers_size,
        reclaimable=du.reclaimable_size))
    out.summary.append(engine_pb2.DfSummary(
        type="Containers", total=len(out.containers), active=len(running),
        size=sum(c.size for c in out.containers),
        reclaimable=sum(c.size for c in out.containers if c.state not in RUNNING)))
    out.summary.append(engine_pb2.DfSummary(
        type="Local Volumes", total=len(out.volumes),
        active=sum(1 for v in out.volumes if v.containers),
        size=sum(v.size for v in out.volumes),
        reclaimable=sum(v.size for v in out.volumes if not v.containers)))
    return out


def save_images(images: images_pb2_grpc.ImagesStub,
                references: list[str]) -> Iterator[types_pb2.ArchiveChunk]:
    return relay_archive(images.Save(types_pb2.SaveImagesRequest(references=references)))


def load_images(images: images_pb2_grpc.ImagesStub,
                chunks: Iterator[bytes]) -> types_pb2.LoadImagesResponse:
    return images.Load(types_pb2.ArchiveChunk(data=d) for d in chunks)


def info(images: images_pb2_grpc.ImagesStub, shim: shim_pb2_grpc.ShimStub,
         records: Records, root_dir: str) -> engine_pb2.InfoResponse:
    """`docker info`: what the engine holds, which runtimes it has, and host facts. The
    host facts are the gateway's; runtimes and container states come from the shim."""
    states = {s.id: s.status for s in shim.List(shim_pb2.ListRequest()).containers}
    ids = [r.id for r in records.all()]
    status = [states.get(cid, "stopped") for cid in ids]
    runtimes = shim.Runtimes(shim_pb2.RuntimesRequest())
    uname = platform.uname()
    return engine_pb2.InfoResponse(
        containers=len(ids), containers_running=status.count("running"),
        containers_paused=status.count("paused"),
        containers_stopped=len(ids) - status.count("running") - status.count("paused"),
        images=len(images.List(images_pb2.ListImagesRequest()).images),
        server_version=VERSION, storage_driver="overlayfs",
        cgroup_version="2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1",
        runtimes=runtimes.runtimes,
        default_runtime=runtimes.default, kernel_version=uname.release,
        operating_system=_os_name(), os_type=uname.system.lower(), architecture=host_arch()[0],
        ncpu=os.cpu_count() or 0, mem_total=_mem_total(), root_dir=root_dir,
        name=socket.gethostname())


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
