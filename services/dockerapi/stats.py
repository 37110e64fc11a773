"""``GET /containers/{id}/stats`` and ``/top``: engine.v1 ContainerStats/TopContainer in
Docker's shapes.

Docker's CPU percentage is ``cpu_delta / system_delta * online_cpus * 100``, with
system_cpu_usage the host's CPU time. The engine reports the reading's monotonic time
instead; ``read_time_ns * online_cpus`` (all CPUs' time elapsed) gives the clients the same
percentage without this process reading the container host's /proc/stat (it may run on
another host). Readings are a second apart when streaming, as dockerd's collector.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from muelle.engine.v1 import engine_pb2

from services.dockerapi.engine import Gateway
from services.dockerapi.errors import ApiError
from services.dockerapi.http import Request, Responder
from vocab.timefmt import now_rfc3339

INTERVAL = 1.0  # seconds between readings, as dockerd
ZERO_TIME = "0001-01-01T00:00:00Z"


def _cpu(e: engine_pb2.ContainerStatsEntry | None) -> dict[str, Any]:
    if e is None:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                              "usage_in_usermode": 0}, "throttling_data": {}}
    return {"cpu_usage": {"total_usage": e.cpu_usage_ns, "usage_in_kernelmode": 0,
                          "usage_in_usermode": 0},
            "system_cpu_usage": e.read_time_ns * max(e.online_cpus, 1),
            "online_cpus": e.online_cpus, "throttling_data": {}}


def stats_json(e: engine_pb2.ContainerStatsEntry, previous: engine_pb2.ContainerStatsEntry
               | None, read: str, preread: str) -> dict[str, Any]:
    blkio = [{"major": 0, "minor": 0, "op": "read", "value": e.block_read},
             {"major": 0, "minor": 0, "op": "write", "value": e.block_write}]
    return {
        "read": read, "preread": preread, "id": e.id, "name": f"/{e.name}",
        "pids_stats": {"current": e.pids}, "num_procs": 0,
        "cpu_stats": _cpu(e), "precpu_stats": _cpu(previous),
        "memory_stats": {"usage": e.memory_usage, "limit": e.memory_limit, "stats": {}},
        "blkio_stats": {"io_service_bytes_recursive": blkio},
        "networks": {"eth0": {"rx_bytes": e.net_rx, "tx_bytes": e.net_tx, "rx_packets": 0,
                              "tx_packets": 0, "rx_errors": 0, "tx_errors": 0,
                              "rx_dropped": 0, "tx_dropped": 0}},
    }


class Stats:
    def __init__(self, gateway: Gateway, detail: Any) -> None:
        self.gateway = gateway
        self.detail = detail  # async ref -> ContainerDetail (404 when unknown)

    async def _read(self, cid: str) -> engine_pb2.ContainerStatsEntry | None:
        reply = await self.gateway.call("ContainerStats", engine_pb2.ContainerStatsRequest(
            containers=[cid]))
        return reply.containers[0] if reply.containers else None

    async def stats(self, req: Request, out: Responder) -> None:
        detail = await self.detail(req.params["id"])
        stream = req.flag("stream", default=True)
        one_shot = req.flag("one-shot")
        previous, preread = None, ZERO_TIME
        if not stream and not one_shot:  # dockerd fills precpu with a reading before
            previous, preread = await self._read(detail.id), now_rfc3339()
            await asyncio.sleep(INTERVAL)
        await out.start_stream(200, "application/json")
        while True:
            entry = await self._read(detail.id)
            if entry is None:  # stopped: dockerd sends zeros; we end the stream
                entry = engine_pb2.ContainerStatsEntry(id=detail.id, name=detail.name)
                stream = False
            read = now_rfc3339()
            await out.write(json.dumps(stats_json(entry, previous, read, preread)).encode()
                            + b"\n")
            if not stream:
                break
            previous, preread = entry, read
            await asyncio.sleep(INTERVAL)
        await out.end()

    async def top(self, req: Request, out: Responder) -> None:
        detail = await self.detail(req.params["id"])
        if not detail.state.running:
            raise ApiError(409, f"Container {detail.id} is not running")
        reply = await self.gateway.call("TopContainer", engine_pb2.TopContainerRequest(
            container=detail.id, ps_args=req.arg("ps_args")))
        await out.json(200, {"Titles": list(reply.titles),
                             "Processes": [list(row.fields) for row in reply.processes]})
