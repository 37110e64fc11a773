"""`muelle stats` and `muelle top`, with docker's columns.

stats reads every container's raw counters in one call, twice (SAMPLE apart), and shows
rates: Docker's `stats --no-stream` samples each container for ~2 s in turn.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from clients.cli.context import Context
from clients.cli.units import human_binary, human_size, table

SAMPLE = 0.5  # seconds between the two readings of --no-stream
INTERVAL = 1.0  # refresh of the streaming view


def _row(b: Any, a: Any) -> list[str]:
    """One line from two readings (types.v1 ContainerStats) of one container."""
    wall = max(1, a.read_time_ns - b.read_time_ns)
    cpu = (a.cpu_usage_ns - b.cpu_usage_ns) / wall * 100  # % of one CPU, as docker
    limit = a.memory_limit or 1
    return [a.id[:12], a.name, f"{max(cpu, 0.0):.2f}%",
            f"{human_binary(a.memory_usage)} / {human_binary(a.memory_limit)}",
            f"{a.memory_usage / limit * 100:.2f}%",
            f"{human_size(a.net_rx)} / {human_size(a.net_tx)}",
            f"{human_size(a.block_read)} / {human_size(a.block_write)}", str(a.pids)]


HEADER = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
          "BLOCK I/O", "PIDS"]


def _sample(ctx: Context, names: list[str]) -> str:
    first = {c.id: c for c in ctx.client().stats(names).containers}
    time.sleep(SAMPLE)
    rows = [_row(first[c.id], c) for c in ctx.client().stats(names).containers
            if c.id in first]
    return table([HEADER, *rows])


def stats(ctx: Context, args: argparse.Namespace) -> int:
    if args.no_stream:
        ctx.out.write(_sample(ctx, args.containers))
        return 0
    try:
        while True:
            text = _sample(ctx, args.containers)
            if ctx.isatty():
                ctx.out.write("\033[2J\033[H")  # clear, home: a live table
            ctx.out.write(text)
            ctx.out.flush()
            time.sleep(max(0.0, INTERVAL - SAMPLE))
    except KeyboardInterrupt:
        return 0


def top(ctx: Context, args: argparse.Namespace) -> int:
    reply = ctx.client().top(args.container, " ".join(args.ps_args))
    ctx.out.write(table([list(reply.titles), *[list(p.fields) for p in reply.processes]]))
    return 0
