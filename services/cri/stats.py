"""CRI stats (ContainerStats, PodSandboxStats) from engine.v1 ContainerStats: one call
gives every running container's counters; a container that does not run has attributes
and timestamps but no counters. The writable layer's usage comes from one engine.v1
SystemDf call (the bytes and inodes in each container's upper directory, on the image
store's filesystem), for running and stopped containers alike. usageNanoCores is a rate: the
CPU time used since this muelle-cri's previous sample of the same container (or pod)
over the time between the two readings, as containerd computes it (0 at the first)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc
from muelle.types.v1 import types_pb2

from services.cri.records import Record

Counters = dict[str, types_pb2.ContainerStats]


@dataclass
class Sample:
    counters: Counters  # running containers' counters
    layers: dict[str, tuple[int, int]]  # container ID -> bytes, inodes in its writable layer
    layer_fs: str  # where the writable layers are (the image store's directory)


class CpuRates:
    """The last CPU reading of each container (or pod), for usageNanoCores."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[int, int, int]] = {}  # key -> read ns, cpu ns, rate

    def nano_cores(self, key: str, read_ns: int, cpu_ns: int) -> int:
        with self._lock:
            prev = self._last.get(key)
            if prev is not None and (read_ns <= prev[0] or cpu_ns < prev[1]):
                # The same reading again (keep its rate), or a restart reset the counter.
                if read_ns <= prev[0]:
                    return prev[2]
                prev = None
            rate = 0 if prev is None else \
                (cpu_ns - prev[1]) * 1_000_000_000 // (read_ns - prev[0])
            self._last[key] = (read_ns, cpu_ns, rate)
            return rate

    def forget_except(self, running: Counters) -> None:
        """Drop the readings of containers (and pods) that no longer run."""
        with self._lock:
            for key in [k for k in self._last if k.removeprefix("pod/") not in running]:
                del self._last[key]


def running(engine: engine_pb2_grpc.EngineStub) -> Counters:
    reply = engine.ContainerStats(engine_pb2.ContainerStatsRequest())
    return {e.id: e for e in reply.containers}


def sample(engine: engine_pb2_grpc.EngineStub, layer_fs: str) -> Sample:
    df = engine.SystemDf(engine_pb2.SystemDfRequest())
    return Sample(running(engine),
                  {c.id: (max(0, c.size), max(0, c.inodes)) for c in df.containers}, layer_fs)


def _memory(entries: list[types_pb2.ContainerStats], now: int) -> api_pb2.MemoryUsage:
    """CRI memory of one container (or the sum of a pod's): engine.v1's memory_usage
    leaves out inactive page cache, which is the working set; availableBytes is what the
    cgroup's own limit leaves of it (0 without a limit, as in containerd)."""
    memory = api_pb2.MemoryUsage(timestamp=now)
    working = sum(max(0, e.memory_usage) for e in entries)
    memory.working_set_bytes.value = working
    memory.usage_bytes.value = sum(max(0, e.memory_total or e.memory_usage) for e in entries)
    memory.rss_bytes.value = sum(max(0, e.memory_rss) for e in entries)
    memory.page_faults.value = sum(max(0, e.page_faults) for e in entries)
    memory.major_page_faults.value = sum(max(0, e.major_page_faults) for e in entries)
    limits = [e.memory_cgroup_limit for e in entries]
    limited = bool(limits) and all(limit > 0 for limit in limits)
    memory.available_bytes.value = max(0, sum(limits) - working) if limited else 0
    return memory


def _cpu(entries: list[types_pb2.ContainerStats], now: int, rates: CpuRates, key: str
         ) -> api_pb2.CpuUsage:
    cpu = api_pb2.CpuUsage(timestamp=now)
    used = sum(max(0, e.cpu_usage_ns) for e in entries)
    cpu.usage_core_nano_seconds.value = used
    if entries:
        read = max(e.read_time_ns for e in entries)
        cpu.usage_nano_cores.value = max(0, rates.nano_cores(key, read, used))
    return cpu


def of_containers(taken: Sample, chosen: list[Record], rates: CpuRates
                  ) -> list[api_pb2.ContainerStats]:
    now = time.time_ns()
    out = []
    for record in chosen:
        config = record.container_config()
        entry = taken.counters.get(record.id)
        entries = [entry] if entry is not None else []
        cpu, memory = _cpu(entries, now, rates, record.id), _memory(entries, now)
        stats = api_pb2.ContainerStats(
            attributes=api_pb2.ContainerAttributes(
                id=record.id, metadata=config.metadata, labels=config.labels,
                annotations=config.annotations),
            cpu=cpu, memory=memory)
        if record.id in taken.layers:
            used, inodes = taken.layers[record.id]
            stats.writable_layer.CopyFrom(api_pb2.FilesystemUsage(
                timestamp=now, fs_id=api_pb2.FilesystemIdentifier(mountpoint=taken.layer_fs),
                used_bytes=api_pb2.UInt64Value(value=used),
                inodes_used=api_pb2.UInt64Value(value=inodes)))
        out.append(stats)
    return out


def of_pod(taken: Sample, sandbox: Record, members: list[Record], rates: CpuRates
           ) -> api_pb2.PodSandboxStats:
    """The pod's totals (its infra container and its containers) and each container's."""
    now = time.time_ns()
    counters = taken.counters
    config = sandbox.sandbox_config()
    ids = [sandbox.id, *(m.id for m in members)]
    entries = [counters[i] for i in ids if i in counters]
    cpu, memory = _cpu(entries, now, rates, "pod/" + sandbox.id), _memory(entries, now)
    linux = api_pb2.LinuxPodSandboxStats(
        cpu=cpu, memory=memory,
        process=api_pb2.ProcessUsage(timestamp=now),
        containers=of_containers(taken, members, rates))
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
