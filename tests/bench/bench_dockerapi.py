"""The Docker API side by side: the same docker clients against muelle's docker.sock and
against a private dockerd, in one run (targets of issue 15: muelle <= 0.5x dockerd).

1. ``docker run --rm IMAGE true`` (the CLI binary of the session's dockerd for both);
2. ``docker ps -a`` with N stopped containers (100; 5 in smoke mode), and a third side: the
   same CLI against dockerd's answers replayed from memory (``replay``, the floor any daemon
   can reach; reported as ``floor replay/docker``);
3. docker-py ``containers.run(IMAGE, "true", remove=True)``.
"""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.bench.harness import Contender, Result, Settings, emit, run_rounds, timed
from tests.bench.replay import Replay, record
from tests.bench.sides import MARKS, require, run_quiet
from tests.support.docker import Dockerd
from tests.support.engine import Engine

pytestmark = MARKS


def _sides(request: pytest.FixtureRequest, settings: Settings
           ) -> list[tuple[str, str, dict[str, str], str]]:
    """(name, DOCKER_HOST, env, image) for muelle's Docker API and for dockerd."""
    sides = []
    if settings.wants("muelle"):
        engine: Engine = request.getfixturevalue("muelle_docker_engine")
        ref = request.getfixturevalue("busybox_ref")
        engine.cli("pull", ref)
        dockerd: Dockerd = request.getfixturevalue("dockerd")
        env = dict(dockerd.env(), DOCKER_HOST=engine.docker_host)
        sides.append(("muelle", engine.docker_host, env, ref))
    if settings.wants("docker"):
        dockerd = request.getfixturevalue("dockerd")
        ref = request.getfixturevalue("docker_busybox")
        sides.append(("docker", dockerd.host, dict(dockerd.env(), DOCKER_HOST=dockerd.host),
                      ref))
    return sides


def _cli(argv: list[str], env: dict[str, str]) -> Callable[[], None]:
    return lambda: run_quiet(argv, env=env)


def _client(request: pytest.FixtureRequest) -> str:
    dockerd: Dockerd = request.getfixturevalue("dockerd")
    return dockerd.client


def test_docker_cli_run_rm_true(settings: Settings, request: pytest.FixtureRequest) -> None:
    client = _client(request)
    contenders = []
    for name, _, env, ref in _sides(request, settings):
        contenders.append(Contender(name, timed(_cli(
            [client, "run", "--rm", ref, "true"], env))))
    result = run_rounds("dockerapi-run", require(contenders), pairs=settings.pairs,
                        warmup=settings.warmup, meta={"command": "docker run --rm IMAGE true"})
    emit(result, settings)


def test_docker_cli_ps_many(settings: Settings, request: pytest.FixtureRequest,
                            tmp_path: Path) -> None:
    client = _client(request)
    count = settings.scaled(100, 5)
    contenders = []
    for name, _, env, ref in _sides(request, settings):
        for _ in range(count):
            run_quiet([client, "create", ref, "true"], env=env)
        contenders.append(Contender(name, timed(_cli([client, "ps", "-a"], env))))
    replay = _replay_of_dockerd(request, settings, tmp_path, client)
    try:
        if replay is not None:
            env = dict(request.getfixturevalue("dockerd").env(), DOCKER_HOST=replay.host)
            contenders.append(Contender("replay", timed(_cli([client, "ps", "-a"], env))))
        result = run_rounds("dockerapi-ps", require(contenders), pairs=settings.pairs,
                            warmup=settings.warmup,
                            meta={"command": f"docker ps -a ({count} containers)"})
        if replay is not None:
            result.meta["floor replay/docker"] = round(_median_ratio(result, "replay",
                                                                     "docker"), 3)
        emit(result, settings)
    finally:
        if replay is not None:
            replay.close()
        for _, _, env, _ in _sides(request, settings):
            ids = subprocess.run([client, "ps", "-aq"], env=env, capture_output=True,
                                 text=True, timeout=120).stdout.split()
            if ids:
                run_quiet([client, "rm", "-f", *ids], env=env)


def _replay_of_dockerd(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path,
                       client: str) -> Replay | None:
    """The docker CLI's floor: dockerd's own answers to ``docker ps -a``, replayed from
    memory by a server that does no work (tests/bench/replay.py). Only with dockerd's side."""
    if not settings.wants("docker"):
        return None
    dockerd: Dockerd = request.getfixturevalue("dockerd")
    socket_path = dockerd.host.removeprefix("unix://")
    answers = {"_ping": record(socket_path, "/_ping"),
               "json": record(socket_path, "/v1.41/containers/json?all=1")}
    answers["*"] = answers["_ping"]
    return Replay(tmp_path / "replay", answers)


def _median_ratio(result: Result, a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(result.samples[a], result.samples[b],
                                                    strict=True))


def _py_run(client: docker.DockerClient, ref: str) -> Callable[[], object]:
    return lambda: client.containers.run(ref, "true", remove=True)


def test_docker_py_containers_run(settings: Settings, request: pytest.FixtureRequest) -> None:
    contenders = []
    clients = []
    for name, host, _, ref in _sides(request, settings):
        c = docker.DockerClient(base_url=host, timeout=120)
        clients.append(c)
        contenders.append(Contender(name, timed(_py_run(c, ref))))
    try:
        result = run_rounds("dockerapi-docker-py-run", require(contenders),
                            pairs=settings.pairs, warmup=settings.warmup,
                            meta={"command": "docker-py containers.run(IMAGE, 'true', "
                                             "remove=True)"})
        emit(result, settings)
    finally:
        for c in clients:
            c.close()
