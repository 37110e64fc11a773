"""X-Registry-Auth: docker-py pulls and pushes with ``auth_config`` against a private
htpasswd registry, with no ``docker login`` before. The credentials go with that call
only: the same call without them is refused by the registry (401)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import pytest
from docker.errors import APIError

from tests.compat.conftest import PASSWORD, USER
from tests.support.engine import Engine
from tests.support.registry import LocalRegistry


@pytest.fixture(scope="module")
def client(docker_engine: Engine) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=docker_engine.docker_host, timeout=60)
    yield c
    c.close()


def _push(client: docker.DockerClient, repo: str, auth: dict[str, str] | None
          ) -> list[dict[str, object]]:
    out = client.images.push(repo, tag="1", auth_config=auth)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_push_and_pull_with_auth_config_and_refused_without(
        client: docker.DockerClient, pulled: str, private_registry: LocalRegistry) -> None:
    auth = {"username": USER, "password": PASSWORD}
    repo = f"{private_registry.host}/xauth/busybox"
    target = f"{repo}:1"
    assert client.images.get(pulled).tag(repo, "1")

    refused = _push(client, repo, None)
    assert "401" in str(refused[-1].get("error", "")) or \
        "unauthorized" in str(refused[-1].get("error", "")).lower(), refused
    pushed = _push(client, repo, auth)
    assert "error" not in pushed[-1], pushed
    assert str(pushed[-1].get("status", "")).startswith("1: digest: sha256:"), pushed

    client.images.remove(target)
    with pytest.raises(APIError) as no_auth:
        client.images.pull(repo, tag="1")
    assert no_auth.value.status_code == 401, no_auth.value
    image = client.images.pull(repo, tag="1", auth_config=auth)
    assert target in image.tags
    # Used for those calls only: nothing was stored, so a pull without them still fails.
    client.images.remove(target)
    with pytest.raises(APIError) as again:
        client.images.pull(repo, tag="1")
    assert again.value.status_code == 401
