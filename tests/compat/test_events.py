"""`docker events` and docker-py's events() against muelle's Docker API: the same
container life as on a private dockerd gives the same filtered events; the stream is live."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import docker
import pytest

from tests.compat.conftest import DockerCli, docker_cli
from tests.support.docker import Dockerd
from tests.support.engine import Engine

# The actions both engines report the same way (dockerd adds kill and attach events, and
# network connect/disconnect on its default bridge).
LIFE = ("create", "start", "pause", "unpause", "die", "stop", "destroy")
FORMAT = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.team}} " \
         "{{.Actor.Attributes.exitCode}}"


def _life(env: dict[str, str], image: str, name: str) -> list[str]:
    def docker(*args: str) -> str:
        return subprocess.run([docker_cli(), *args], env=env, capture_output=True, text=True,
                              timeout=60, check=True).stdout

    since = str(time.time() - 1)
    docker("run", "-d", "--name", name, "-l", "team=blue", image, "sleep", "100")
    docker("pause", name)
    docker("unpause", name)
    docker("stop", "-t", "1", name)
    docker("rm", name)
    until = str(time.time() + 1)
    args = ["events", "--since", since, "--until", until, "--format", FORMAT,
            "--filter", "type=container", "--filter", "label=team=blue",
            "--filter", f"container={name}"]
    for action in LIFE:
        args += ["--filter", f"event={action}"]
    return docker(*args).splitlines()


def test_container_life_events_match_dockerd(docker_engine: Engine, dockerd: Dockerd,
                                             pulled: str) -> None:
    name = f"ev-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, DOCKER_HOST=docker_engine.docker_host)
    on_muelle = _life(env, pulled, name)
    on_dockerd = _life(dict(dockerd.env(), DOCKER_HOST=dockerd.host), pulled, name)
    assert on_muelle == on_dockerd
    assert [line.split()[:4] for line in on_muelle] == [
        ["container", action, name, "blue"] for action in LIFE]
    assert on_muelle[LIFE.index("die")].split()[4] == "137"  # sleep ignores SIGTERM


def test_events_stream_live_until_the_client_leaves(docker: DockerCli, pulled: str) -> None:
    name = f"live-{uuid.uuid4().hex[:6]}"
    watch = subprocess.Popen([docker.binary, "events", "--filter", f"container={name}",
                              "--format", "{{.Action}}"], env=docker.env,
                             stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # no event to wait for: the subscription is made on connect
        docker("run", "--rm", "--name", name, pulled, "true")
        assert watch.stdout is not None
        seen: list[str] = []
        while "destroy" not in seen:
            line = watch.stdout.readline()
            assert line, f"the stream ended: {seen}"
            seen.append(line.strip())
        assert seen[0] == "create" and "start" in seen and "die" in seen
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    docker("version")  # the engine still serves


def test_docker_py_events_with_filters(docker_engine: Engine) -> None:
    client = docker.DockerClient(base_url=docker_engine.docker_host, timeout=60)
    try:
        net = f"evnet-{uuid.uuid4().hex[:6]}"
        since = int(time.time())
        client.networks.create(net).remove()
        client.volumes.create(f"evvol-{uuid.uuid4().hex[:6]}").remove()
        got = [(e["Type"], e["Action"], e["Actor"]["Attributes"]["name"])
               for e in client.events(since=since, until=int(time.time()) + 1, decode=True,
                                      filters={"type": "network", "network": net})]
        assert got == [("network", "create", net), ("network", "destroy", net)]
    finally:
        client.close()


@pytest.mark.parametrize("query", ["since=yesterday", "until=-1", "filters=%7B%22x%22:[]%7D"])
def test_bad_events_queries_are_400(docker_engine: Engine, query: str) -> None:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          "--unix-socket", docker_engine.docker_host.removeprefix("unix://"),
                          f"http://d/v1.41/events?{query}"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "400"
