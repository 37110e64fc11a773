"""1. ``run --rm IMAGE true`` end to end from the CLI: muelle vs ``docker run --rm``."""

from __future__ import annotations

import pytest

from tests.bench.harness import Contender, Settings, emit, run_rounds, timed
from tests.bench.sides import MARKS, require, run_quiet
from tests.support.engine import CLI

pytestmark = MARKS


def test_run_rm_true(settings: Settings, request: pytest.FixtureRequest) -> None:
    contenders = []
    if settings.wants("muelle"):
        engine = request.getfixturevalue("muelle_engine")
        ref = request.getfixturevalue("muelle_busybox")
        argv = [CLI, "run", "--rm", ref, "true"]
        contenders.append(Contender("muelle", timed(lambda: run_quiet(argv, env=engine.env))))
    if settings.wants("docker"):
        dockerd = request.getfixturevalue("dockerd")
        ref = request.getfixturevalue("docker_busybox")
        dargv = dockerd.argv("run", "--rm", ref, "true")
        denv = dockerd.env()
        contenders.append(Contender("docker", timed(lambda: run_quiet(dargv, env=denv))))
    result = run_rounds("run", require(contenders), pairs=settings.pairs, warmup=settings.warmup,
                        meta={"command": "run --rm IMAGE true"})
    emit(result, settings)
