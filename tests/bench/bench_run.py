"""1. ``run --rm IMAGE true`` end to end from the CLI: muelle vs ``docker run --rm``.

Both engines run the container the way they do by default, a veth on a bridge included
(the session's dockerd gets a bridge of its own, see ``conftest.dockerd``); the second case
gives both ``--network none``, so the figure without network set-up is there too.
"""

from __future__ import annotations

import pytest

from tests.bench.harness import Contender, Settings, emit, run_rounds, timed
from tests.bench.sides import MARKS, require, run_quiet
from tests.support.engine import CLI

pytestmark = MARKS

CASES = {"run": (), "run-network-none": ("--network", "none")}


@pytest.mark.parametrize("name", list(CASES))
def test_run_rm_true(name: str, settings: Settings, request: pytest.FixtureRequest) -> None:
    options = CASES[name]
    contenders = []
    if settings.wants("muelle"):
        engine = request.getfixturevalue("muelle_engine")
        ref = request.getfixturevalue("muelle_busybox")
        argv = [CLI, "run", "--rm", *options, ref, "true"]
        contenders.append(Contender("muelle", timed(lambda: run_quiet(argv, env=engine.env))))
    if settings.wants("docker"):
        dockerd = request.getfixturevalue("dockerd")
        ref = request.getfixturevalue("docker_busybox")
        dargv = dockerd.argv("run", "--rm", *options, ref, "true")
        denv = dockerd.env()
        contenders.append(Contender("docker", timed(lambda: run_quiet(dargv, env=denv))))
    result = run_rounds(name, require(contenders), pairs=settings.pairs, warmup=settings.warmup,
                        meta={"command": " ".join(["run --rm", *options, "IMAGE true"])})
    emit(result, settings)
