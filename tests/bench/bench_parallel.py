"""3. N (default 20) parallel ``run --rm IMAGE true``: total wall time, muelle vs docker."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.bench.harness import Contender, Settings, emit, run_rounds, timed
from tests.bench.sides import MARKS, require, run_quiet
from tests.support.engine import CLI

pytestmark = MARKS


def all_at_once(argv: list[str], env: dict[str, str], n: int) -> Callable[[], None]:
    """An action that spawns ``argv`` n times at once and waits for all (any failure raises)."""

    def action() -> None:
        with ThreadPoolExecutor(max_workers=n) as pool:
            for future in [pool.submit(run_quiet, argv, 300, env) for _ in range(n)]:
                future.result()

    return action


def test_parallel_run_rm(settings: Settings, request: pytest.FixtureRequest) -> None:
    n = settings.scaled(20, 4)
    contenders = []
    if settings.wants("muelle"):
        engine = request.getfixturevalue("muelle_engine")
        ref = request.getfixturevalue("muelle_busybox")
        argv = [CLI, "run", "--rm", ref, "true"]
        contenders.append(Contender("muelle", timed(all_at_once(argv, engine.env, n))))
    if settings.wants("docker"):
        dockerd = request.getfixturevalue("dockerd")
        ref = request.getfixturevalue("docker_busybox")
        dargv = dockerd.argv("run", "--rm", ref, "true")
        contenders.append(Contender("docker", timed(all_at_once(dargv, dockerd.env(), n))))
    result = run_rounds("parallel", require(contenders), pairs=settings.pairs,
                        warmup=settings.warmup,
                        meta={"command": f"{n} x run --rm IMAGE true at once", "parallel": n})
    emit(result, settings)
