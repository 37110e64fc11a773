"""CRI stats (ContainerStats, PodSandboxStats) from engine.v1 ContainerStats: one call
gives every running container's counters; a container that does not run has attributes
and timestamps but no counters."""

from __future__ import annotations

import time

from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc
from muelle.types.v1 import types_pb2

from services.cri.records import Record

Counters = dict[str, types_pb2.ContainerStats]


def running(engine: engine_pb2_grpc.EngineStub) -> Counters:
    reply = engine.ContainerStats(engine_pb2.ContainerStatsRequest())
    return {e.id: e for e in reply.containers}


def _cpu_memory(entry: types_pb2.ContainerStats | None, now: int
                ) -> tuple[api_pb2.CpuUsage, api_pb2.MemoryUsage]:
    cpu, memory = api_pb2.CpuUsage(timestamp=now), api_pb2.MemoryUsage(timestamp=now)
    if entry is not None:
        cpu.usage_core_nano_seconds.value = max(0, entry.cpu_usage_ns)
        # engine.v1's memory_usage leaves out inactive page cache: the working set.
        memory.working_set_bytes.value = max(0, entry.memory_usage)
        memory.usage_bytes.value = max(0, entry.memory_usage)
    return cpu, memory


def of_containers(counters: Counters, chosen: list[Record]) -> list[api_pb2.ContainerStats]:
    now = time.time_ns()
    out = []
    for record in chosen:
        config = record.container_config()
        cpu, memory = _cpu_memory(counters.get(record.id), now)
        out.append(api_pb2.ContainerStats(
            attributes=api_pb2.ContainerAttributes(
                id=record.id, metadata=config.metadata, labels=config.labels,
                annotations=config.annotations),
            cpu=cpu, memory=memory))
    return out


def of_pod(counters: Counters, sandbox: Record, members: list[Record]) -> api_pb2.PodSandboxStats:
    """The pod's totals (its infra container and its containers) and each container's."""
    now = time.time_ns()
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
        containers=of_containers(counters, members))
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
