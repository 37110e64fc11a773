"""CRI stats (ContainerStats, PodSandboxStats) from engine.v1 ContainerStats: one call
gives every running container's counters; a container that does not run has attributes
and timestamps but no counters. The writable layer's usage comes from one engine.v1
SystemDf call (the bytes in each container's upper directory, on the image store's
filesystem), for running and stopped containers alike."""

from __future__ import annotations

import time
from dataclasses import dataclass

from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc

from services.cri.records import Record

Counters = dict[str, engine_pb2.ContainerStatsEntry]


@dataclass
class Sample:
    counters: Counters  # running containers' counters
    layers: dict[str, int]  # container ID -> bytes in its writable layer
    layer_fs: str  # where the writable layers are (the image store's directory)


def running(engine: engine_pb2_grpc.EngineStub) -> Counters:
    reply = engine.ContainerStats(engine_pb2.ContainerStatsRequest())
    return {e.id: e for e in reply.containers}


def sample(engine: engine_pb2_grpc.EngineStub, layer_fs: str) -> Sample:
    df = engine.SystemDf(engine_pb2.SystemDfRequest())
    return Sample(running(engine), {c.id: max(0, c.size) for c in df.containers}, layer_fs)


def _cpu_memory(entry: engine_pb2.ContainerStatsEntry | None, now: int
                ) -> tuple[api_pb2.CpuUsage, api_pb2.MemoryUsage]:
    cpu, memory = api_pb2.CpuUsage(timestamp=now), api_pb2.MemoryUsage(timestamp=now)
    if entry is not None:
        cpu.usage_core_nano_seconds.value = max(0, entry.cpu_usage_ns)
        # engine.v1's memory_usage leaves out inactive page cache: the working set.
        memory.working_set_bytes.value = max(0, entry.memory_usage)
        memory.usage_bytes.value = max(0, entry.memory_usage)
    return cpu, memory


def of_containers(taken: Sample, chosen: list[Record]) -> list[api_pb2.ContainerStats]:
    now = time.time_ns()
    out = []
    for record in chosen:
        config = record.container_config()
        cpu, memory = _cpu_memory(taken.counters.get(record.id), now)
        stats = api_pb2.ContainerStats(
            attributes=api_pb2.ContainerAttributes(
                id=record.id, metadata=config.metadata, labels=config.labels,
                annotations=config.annotations),
            cpu=cpu, memory=memory)
        if record.id in taken.layers:
            stats.writable_layer.CopyFrom(api_pb2.FilesystemUsage(
                timestamp=now, fs_id=api_pb2.FilesystemIdentifier(mountpoint=taken.layer_fs),
                used_bytes=api_pb2.UInt64Value(value=taken.layers[record.id])))
        out.append(stats)
    return out


def of_pod(taken: Sample, sandbox: Record, members: list[Record]) -> api_pb2.PodSandboxStats:
    """The pod's totals (its infra container and its containers) and each container's."""
    now = time.time_ns()
    counters = taken.counters
    config = sandbox.sandbox_config()
    ids = [sandbox.id, *(m.id for m in members)]
    entries = [counters[i] for i in ids if i in counters]
    cpu, memory = api_pb2.CpuUsage(timestamp=now), api_pb2.MemoryUsage(timestamp=now)
    cpu.usage_core_nano_seconds.value = sum(max(0, e.cpu_usage_ns) for e in entries)
    memory.working_set_bytes.value = sum(max(0, e.memory_usage) for e in entries)
    memory.usage_bytes.value = memory.working_set_bytes.value
    linux = api_pb2.LinuxPodSandboxStats(
        cpu=cpu, memory=memory,
        process=api_pb2.ProcessUsage(timestamp=now),
        containers=of_containers(taken, members))
    linux.process.process_count.value = sum(max(0, e.pids) for e in entries)
    infra = counters.get(sandbox.id)
    if infra is not None:  # the pod's network is the infra container's
        eth0 = api_pb2.NetworkInterfaceUsage(name="eth0")
        eth0.rx_bytes.value, eth0.tx_bytes.value = max(0, infra.net_rx), max(0, infra.net_tx)
        linux.network.CopyFrom(api_pb2.NetworkUsage(timestamp=now, default_interface=eth0,
                                                    interfaces=[eth0]))
    return api_pb2.PodSandboxStats(
        attributes=api_pb2.PodSandboxAttributes(
            id=sandbox.id, metadata=config.metadata, labels=config.labels,
            annotations=config.annotations),
        linux=linux)
