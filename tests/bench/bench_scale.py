"""6. Scale: N sleeping containers on one host, muelle and Docker one after the other.

Per side: ``run -d --network none IMAGE sleep 100000`` N times (MUELLE_BENCH_SCALE_PARALLEL at once,
default 4), then with all N running: ``ps`` (median of 3 calls), ``stats --no-stream``
(one call), the memory the engine and its per-container helpers grew by, per container (RSS
and PSS; the containers' own processes are not counted), and ``rm -f`` of all N. After the
removal nothing of the containers may be left: no helper process, no process in the
engine's cgroup parent, and ``ps -a`` empty. A side that fails any of it fails the benchmark.

    MUELLE_BENCH_SCALE=1000 .venv/bin/pytest -q -s tests/bench/bench_scale.py

N is MUELLE_BENCH_SCALE (default 50, smoke 5). Every figure is one sample of one round
(a round of 1000 takes minutes per side); ratios are muelle/docker as everywhere.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.bench import procs
from tests.bench.bench_memory import Side, settle, sides
from tests.bench.harness import Result, Settings, emit
from tests.bench.sides import MARKS

pytestmark = MARKS

DEFAULT_N = 50
# No network: each engine's test bridge is a /24 (253 addresses; Docker's own default
# bridge is a /16, muelle picks a free /24), so 1000 bridged containers do not fit on one.
RUN_ARGS = ("--network", "none")
COMMAND = ("sleep", "100000")


@dataclass
class Scaled:
    """What one side needs here beyond bench_memory's Side: its CLI, its cgroup parent."""

    side: Side
    cli: Callable[..., str]
    cgroup_parent: str


def _count(settings: Settings) -> int:
    raw = os.environ.get("MUELLE_BENCH_SCALE", "")
    if not raw:
        return settings.scaled(DEFAULT_N, 5)
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"MUELLE_BENCH_SCALE={raw!r}: want a positive integer")
    return int(raw)


def _parallel() -> int:
    raw = os.environ.get("MUELLE_BENCH_SCALE_PARALLEL", "4")
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"MUELLE_BENCH_SCALE_PARALLEL={raw!r}: want a positive integer")
    return int(raw)


def _scaled(side: Side, ref: str, cli: Callable[..., str], cgroup_parent: str) -> Scaled:
    """``side`` with this benchmark's run command, through ``cli`` (docker's argv shape)."""
    side.start = lambda: cli("run", "-d", *RUN_ARGS, ref, *COMMAND).strip()
    return Scaled(side, cli, cgroup_parent)


def _stdout(command: Callable[..., subprocess.CompletedProcess[str]], *args: str) -> str:
    return command(*args, timeout=600).stdout


def _sides(settings: Settings, request: pytest.FixtureRequest) -> list[Scaled]:
    found = []
    for side in sides(settings, request):  # bench_memory's, warmed up
        if side.name == "muelle":
            engine = request.getfixturevalue("muelle_engine")
            ref, parent = request.getfixturevalue("muelle_busybox"), engine.cgroup_parent
            cli = functools.partial(_stdout, engine.cli)
        else:
            dockerd = request.getfixturevalue("dockerd")
            ref, parent = request.getfixturevalue("docker_busybox"), dockerd.cgroup_parent
            cli = functools.partial(_stdout, dockerd.docker)
        found.append(_scaled(side, ref, cli, parent))
    return found


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _one_side(s: Scaled, n: int, parallel: int) -> dict[str, float]:
    side = s.side
    before_rss = procs.total_rss(side.daemons() | side.helpers())
    before_pss = procs.total_pss(side.daemons() | side.helpers())
    ids: list[str] = []
    out: dict[str, float] = {}
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            futures = [pool.submit(side.start) for _ in range(n)]
        out["run_all"] = time.perf_counter() - start
        failed = [f.exception() for f in futures if f.exception() is not None]
        ids += [f.result() for f in futures if f.exception() is None]  # removed below
        if failed:
            raise AssertionError(f"{side.name}: {len(failed)} of {n} runs failed, the first: "
                                 f"{failed[0]}")
        listed = s.cli("ps", "-q", "--no-trunc").split()
        missing = set(ids) - set(listed)
        assert not missing, f"{side.name}: ps does not list {len(missing)} of {n} containers"
        out["ps"] = statistics.median(_timed(lambda: s.cli("ps")) for _ in range(3))
        out["stats"] = _timed(lambda: s.cli("stats", "--no-stream"))
        settle()
        everything = side.daemons() | side.helpers()
        out["rss_per_container"] = (procs.total_rss(everything) - before_rss) / n
        out["pss_per_container"] = (procs.total_pss(everything) - before_pss) / n
        out["helpers_per_container"] = len(side.helpers()) / n
    finally:
        if ids:
            # In batches: one command line for 1000 IDs is fine, but a failure then
            # names one batch. Removed even when a measurement above failed.
            out["rm_all"] = _timed(lambda: [s.cli("rm", "-f", *ids[i:i + 100])
                                            for i in range(0, len(ids), 100)])
    left = s.cli("ps", "-a", "-q").split()
    assert not left, f"{side.name}: {len(left)} containers left after rm -f"
    assert not side.helpers(), f"{side.name}: helper processes left after rm -f"
    assert not procs.in_cgroups(s.cgroup_parent), f"{side.name}: processes left in cgroups"
    return out


UNITS = {"run_all": "s", "ps": "s", "stats": "s", "rm_all": "s",
         "rss_per_container": "B", "pss_per_container": "B", "helpers_per_container": "n"}


def test_scale(settings: Settings, request: pytest.FixtureRequest) -> None:
    n, parallel = _count(settings), _parallel()
    chosen = _sides(settings, request)
    figures = {s.side.name: _one_side(s, n, parallel) for s in chosen}
    meta = {"containers": n, "parallel_runs": parallel,
            "command": " ".join(("run -d", *RUN_ARGS, "IMAGE", *COMMAND))}
    for metric, unit in UNITS.items():
        result = Result(name=f"scale-{metric}", unit=unit, subject=chosen[0].side.name,
                        samples={name: [f[metric]] for name, f in figures.items()},
                        meta=meta, started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        emit(result, settings)
