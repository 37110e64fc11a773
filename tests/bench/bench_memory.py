"""5. Memory. Idle: RSS of the four muelle services vs dockerd + containerd, with the
services as four processes and combined in one (muelle-engine). Per container:
with N (default 10) ``sleep`` containers running, the growth of the engine's own processes
(services/daemons plus per-container helpers: muelle monitors, containerd-shims) divided by
N, measured once the monitors have handed over to their native tail (a settle wait on
both sides). The containers' own processes (in their cgroups) are never counted.

Both engines first run one container so that their run paths are loaded. RSS counts
shared pages once per process; each result also records every process's PSS.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from engine import launcher
from services.shim.monitor import HANDOFF_AFTER
from tests.bench import procs
from tests.bench.harness import Contender, Settings, emit, run_rounds
from tests.bench.sides import MARKS
from tests.support.docker import Dockerd
from tests.support.engine import Engine

pytestmark = MARKS


@dataclass
class Side:
    """How to see one engine's processes and start/stop sleeping containers in it."""

    name: str
    daemons: Callable[[], set[int]]
    helpers: Callable[[], set[int]]
    start: Callable[[], str]
    remove: Callable[[list[str]], object]
    warm: Callable[[], object]
    start_with: Callable[[tuple[str, ...], tuple[str, ...]], str]  # run -d FLAGS IMAGE CMD


def muelle_side(engine: Engine, ref: str, name: str = "muelle") -> Side:
    def daemons() -> set[int]:
        pids = {launcher.running_pid(engine.cfg, name) for name in launcher.ORDER}
        services = {p for p in pids if p is not None}
        # The shim's monitor fork server is a standing process too, and so is the
        # standby monitor it keeps forked (its child, named muelle-standby).
        servers = procs.children_running(services, "services.shim.forkserver")
        standbys = {p for p in procs.children_running(servers, "services.shim.forkserver")
                    if procs.comm(p) == "muelle-standby"}
        return services | servers | standbys

    def helpers() -> set[int]:
        return (procs.referring_to(str(engine.dir)) - daemons()
                - procs.in_cgroups(engine.cgroup_parent))

    return Side(
        name, daemons, helpers,
        start=lambda: engine.cli("run", "-d", ref, "sleep", "1000").stdout.strip(),
        remove=lambda ids: engine.cli("rm", "-f", *ids),
        warm=lambda: engine.cli("run", "--rm", ref, "true"),
        start_with=lambda flags, cmd: engine.cli("run", "-d", *flags, ref, *cmd).stdout.strip(),
    )


def docker_side(dockerd: Dockerd, ref: str) -> Side:
    def daemons() -> set[int]:
        pid = dockerd.pid()
        return ({pid} if pid else set()) | set(dockerd.containerd_pids())

    def helpers() -> set[int]:
        return set(dockerd.shim_pids()) - procs.in_cgroups(dockerd.cgroup_parent)

    return Side(
        "docker", daemons, helpers,
        start=lambda: dockerd.docker("run", "-d", ref, "sleep", "1000").stdout.strip(),
        remove=lambda ids: dockerd.docker("rm", "-f", *ids),
        warm=lambda: dockerd.docker("run", "--rm", ref, "true"),
        start_with=lambda flags, cmd: dockerd.docker("run", "-d", *flags, ref,
                                                     *cmd).stdout.strip(),
    )


def sides(settings: Settings, request: pytest.FixtureRequest,
          combined: bool = False) -> list[Side]:
    found = []
    if combined and settings.wants("muelle-combined"):
        engine = request.getfixturevalue("muelle_combined_engine")
        found.append(muelle_side(engine, request.getfixturevalue("muelle_combined_busybox"),
                                 "muelle-combined"))
    elif not combined and settings.wants("muelle"):
        engine = request.getfixturevalue("muelle_engine")
        found.append(muelle_side(engine, request.getfixturevalue("muelle_busybox")))
    if settings.wants("docker"):
        dockerd = request.getfixturevalue("dockerd")
        found.append(docker_side(dockerd, request.getfixturevalue("docker_busybox")))
    if not found:
        pytest.skip("MUELLE_BENCH_ONLY selects no contender of this benchmark")
    for side in found:
        side.warm()
    return found


def idle(side: Side) -> Callable[[], float]:
    return lambda: float(procs.total_rss(side.daemons()))


def idle_pss(side: Side) -> Callable[[], float]:
    return lambda: float(procs.total_pss(side.daemons()))


ENGINE = "the 4 muelle services (+ fork server, standby monitor)"


@pytest.mark.parametrize("combined", [False, True], ids=["processes", "combined"])
def test_idle_rss(settings: Settings, request: pytest.FixtureRequest, combined: bool) -> None:
    chosen = sides(settings, request, combined)
    contenders = [Contender(s.name, idle(s)) for s in chosen]
    floor = procs.grpc_server_floor_rss()
    meta = {"what": f"RSS of {ENGINE} vs dockerd + containerd",
            "processes": {s.name: procs.describe(s.daemons()) for s in chosen},
            # Four separate services can weigh no less than four of these.
            "bare Python gRPC server RSS (MiB)": round(floor / 2**20, 1),
            "4 x that (MiB)": round(4 * floor / 2**20, 1)}
    name = "idle-rss-combined" if combined else "idle-rss"
    emit(run_rounds(name, contenders, pairs=settings.pairs, warmup=settings.warmup,
                    unit="B", meta=meta), settings)


@pytest.mark.parametrize("combined", [False, True], ids=["processes", "combined"])
def test_idle_pss(settings: Settings, request: pytest.FixtureRequest, combined: bool) -> None:
    chosen = sides(settings, request, combined)
    contenders = [Contender(s.name, idle_pss(s)) for s in chosen]
    meta = {"what": f"PSS of {ENGINE} vs dockerd + containerd"}
    name = "idle-pss-combined" if combined else "idle-pss"
    emit(run_rounds(name, contenders, pairs=settings.pairs, warmup=settings.warmup,
                    unit="B", meta=meta), settings)


def settle() -> None:
    """Let the engines reach their steady state for running containers: a muelle
    monitor hands over to its native tail after monitor.HANDOFF_AFTER (both sides wait)."""
    time.sleep(HANDOFF_AFTER + 1.0)


# What each container runs: a plain `sleep`, and a shell with stdin and a terminal
# (`run -dit IMAGE sh`), whose monitor also holds the stdin socket and the pty master.
RUNS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "sleep": ((), ("sleep", "1000"), "container-rss"),
    "it": (("-i", "-t"), ("sh",), "container-rss-it")}


@pytest.mark.parametrize("run", list(RUNS))
def test_per_container_rss(settings: Settings, request: pytest.FixtureRequest, run: str) -> None:
    n = settings.scaled(10, 2)
    flags, command, name = RUNS[run]
    chosen = sides(settings, request)
    snapshot: dict[str, object] = {}
    # The helpers alone (muelle monitors vs containerd-shims), per container, every round.
    helper_rss: dict[str, list[float]] = {s.name: [] for s in chosen}
    helper_pss: dict[str, list[float]] = {s.name: [] for s in chosen}

    def per_container(side: Side) -> Callable[[], float]:
        def sample() -> float:
            before = procs.total_rss(side.daemons() | side.helpers())
            ids: list[str] = []
            try:
                for _ in range(n):
                    ids.append(side.start_with(flags, command))
                settle()
                helpers = side.helpers()
                after = procs.total_rss(side.daemons() | helpers)
                helper_rss[side.name].append(procs.total_rss(helpers) / n)
                helper_pss[side.name].append(procs.total_pss(helpers) / n)
                snapshot[side.name] = {"helpers_per_container": len(helpers) / n,
                                       "helpers": procs.describe(helpers)}
            finally:
                if ids:
                    side.remove(ids)
            return (after - before) / n

        return sample

    contenders = [Contender(s.name, per_container(s)) for s in chosen]
    result = run_rounds(name, contenders, pairs=settings.pairs,
                        warmup=settings.warmup, unit="B",
                        meta={"containers": n,
                              "command": " ".join(("run -d", *flags, "IMAGE", *command))})
    result.meta["last_round"] = snapshot
    result.meta["helper_rss_per_container"] = helper_rss
    result.meta["helper_pss_per_container"] = helper_pss
    for side_name, values in helper_rss.items():
        if values:
            result.meta[f"{side_name} helper RSS/container (median MiB)"] = round(
                statistics.median(values) / 2**20, 2)
    for side_name, values in helper_pss.items():
        if values:
            result.meta[f"{side_name} helper PSS/container (median MiB)"] = round(
                statistics.median(values) / 2**20, 2)
    emit(result, settings)
