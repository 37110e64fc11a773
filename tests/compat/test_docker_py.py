"""docker-py (the Docker SDK for Python) against muelle's Docker API, unchanged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound, NotFound

from tests.support.engine import Engine
from tests.support.images import push_layout
from tests.support.registry import LocalRegistry


@pytest.fixture(scope="module")
def client(docker_engine: Engine) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=docker_engine.docker_host, timeout=60)
    yield c
    c.close()


def test_run_attached_returns_output_and_remove_leaves_nothing(
        client: docker.DockerClient, pulled: str) -> None:
    assert client.containers.run(pulled, ["sh", "-c", "echo hi; echo err >&2"],
                                 remove=True) == b"hi\n"
    assert client.containers.list(all=True) == []


def test_run_detached_logs_stream_wait_remove(client: docker.DockerClient,
                                              pulled: str) -> None:
    c = client.containers.run(pulled, ["sh", "-c", "echo one; echo two >&2; exit 7"],
                              detach=True, labels={"suite": "compat"})
    try:
        assert c.wait() == {"StatusCode": 7, "Error": None}
        assert c.logs() == b"one\ntwo\n"
        assert c.logs(stderr=False) == b"one\n"
        assert b"".join(c.logs(stream=True, follow=True)) == b"one\ntwo\n"
        c.reload()
        assert c.status == "exited"
        assert c.attrs["State"]["ExitCode"] == 7
        assert [x.id for x in client.containers.list(
            all=True, filters={"label": "suite=compat"})] == [c.id]
    finally:
        c.remove()
    with pytest.raises(NotFound):
        client.containers.get(c.id)


def test_exec_run_gives_exit_code_and_output(client: docker.DockerClient,
                                             pulled: str) -> None:
    c = client.containers.run(pulled, ["sleep", "60"], detach=True)
    try:
        assert client.containers.list(filters={"id": c.id})[0].status == "running"
        result = c.exec_run(["sh", "-c", "echo ex; exit 2"])
        assert (result.exit_code, result.output) == (2, b"ex\n")
        result = c.exec_run(["sh", "-c", "echo $X"], environment={"X": "from-env"})
        assert result.output == b"from-env\n"
    finally:
        c.remove(force=True)


def test_images_get_tag_remove(client: docker.DockerClient, pulled: str) -> None:
    image = client.images.get(pulled)
    assert pulled in image.tags
    assert image.tag("compat/tagged", "2")
    assert "compat/tagged:2" in client.images.get("compat/tagged:2").tags
    client.images.remove("compat/tagged:2")
    with pytest.raises(ImageNotFound):
        client.images.get("compat/tagged:2")


def test_low_level_api_client_version(docker_engine: Engine) -> None:
    api = docker.APIClient(base_url=docker_engine.docker_host, version="auto")
    try:
        assert api.api_version == "1.41"
        assert api.ping() is True
    finally:
        api.close()


def test_networks_and_volumes(client: docker.DockerClient, pulled: str) -> None:
    net = client.networks.create("pynet", driver="bridge")
    vol = client.volumes.create("pyvol", labels={"owner": "compat"})
    try:
        assert "pynet" in [n.name for n in client.networks.list()]
        assert [n.name for n in client.networks.list(filters={"type": "custom"})] == ["pynet"]
        assert [v.name for v in client.volumes.list(filters={"label": "owner=compat"})] == \
            ["pyvol"]
        out = client.containers.run(pulled, ["sh", "-c", "echo v > /v/f; cat /v/f"],
                                    network="pynet", volumes={"pyvol": {"bind": "/v"}},
                                    remove=True)
        assert out == b"v\n"
    finally:
        net.remove()
        vol.remove()
    with pytest.raises(NotFound):
        client.networks.get("pynet")


def test_run_pulls_a_missing_image_first(client: docker.DockerClient, registry: LocalRegistry,
                                         busybox_layout: Path) -> None:
    """docker-py pulls only when create's 404 says "No such image" (COMPAT.md §6)."""
    ref = f"{registry.host}/compat/py-{uuid.uuid4().hex[:6]}:1"
    push_layout(busybox_layout, ref, tag="1")
    assert client.containers.run(ref, ["echo", "pulled"], remove=True) == b"pulled\n"
    assert ref in client.images.get(ref).tags
