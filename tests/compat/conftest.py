"""compat fixtures: a muelle engine with its Docker API, and the real Docker clients.

The clients are the ones people have: the docker CLI of Debian's docker.io (20.10, from
`make setup`) and, when the machine has one, a newer CLI in /usr/local/bin (both are run);
docker-py and testcontainers from the venv. Each gets a private DOCKER_CONFIG, so nothing
of the host's Docker setup is read or written.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import launcher
from tests.support.docker import Dockerd, started
from tests.support.engine import Engine
from tests.support.registry import LocalRegistry, htpasswd_line

pytestmark = pytest.mark.root

DEBIAN_CLI = "/usr/bin/docker"
NEWER_CLI = "/usr/local/bin/docker"
CLIS = [p for p in (DEBIAN_CLI, NEWER_CLI) if Path(p).exists()]


def docker_cli() -> str:
    """A docker CLI: make setup installs Debian's (docker.io); a missing one is a failure."""
    if not CLIS:
        raise AssertionError(f"no docker CLI at {DEBIAN_CLI}: make setup installs docker.io")
    return CLIS[0]


@dataclass
class DockerCli:
    """One docker CLI binary pointed at one engine's Docker API."""

    binary: str
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, input: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, *args], env=self.env, capture_output=True,
                              text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc


@pytest.fixture(scope="module")
def docker_engine() -> Iterator[Engine]:
    """An engine with its Docker API (the four services and muelle-dockerapi)."""
    with Engine(services=launcher.ALL) as eng:
        yield eng


@pytest.fixture(scope="module")
def docker_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docker-config")


@pytest.fixture(scope="module", params=CLIS,
                ids=lambda p: "debian-cli" if p == DEBIAN_CLI else "newer-cli")
def docker(request: pytest.FixtureRequest, docker_engine: Engine,
           docker_config: Path) -> DockerCli:
    env = dict(os.environ, DOCKER_HOST=docker_engine.docker_host,
               DOCKER_CONFIG=str(docker_config))
    env.pop("DOCKER_CONTEXT", None)
    return DockerCli(request.param, env)


@pytest.fixture(scope="module")
def pulled(docker_engine: Engine, busybox_ref: str) -> str:
    """The busybox test image, pulled into the engine (by muelle's own CLI)."""
    docker_engine.cli("pull", busybox_ref)
    return busybox_ref


@pytest.fixture(scope="module")
def dockerd(busybox_ref: str) -> Iterator[Dockerd]:
    """A private dockerd with the busybox test image, to compare muelle's answers with."""
    daemon = started()
    try:
        daemon.docker("pull", busybox_ref)
        yield daemon
    finally:
        daemon.close()


@pytest.fixture(scope="module")
def muelle_cli(docker_engine: Engine) -> DockerCli:
    """The Debian docker CLI against muelle, for side-by-side tests with ``dockerd_cli``."""
    env = dict(os.environ, DOCKER_HOST=docker_engine.docker_host)
    env.pop("DOCKER_CONTEXT", None)
    return DockerCli(docker_cli(), env)


@pytest.fixture(scope="module")
def dockerd_cli(dockerd: Dockerd) -> DockerCli:
    """The same CLI against the private dockerd."""
    return DockerCli(docker_cli(), dict(dockerd.env(), DOCKER_HOST=dockerd.host))


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A host directory with a secret that links in containers must never reach."""
    path = tmp_path / "host"
    path.mkdir()
    (path / "secret").write_text("HOST SECRET\n")
    return path


USER, PASSWORD = "pusher", "pusher-secret"  # the private registry's one account


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A registry that takes only USER / PASSWORD (htpasswd, Basic auth)."""
    base = tmp_path_factory.mktemp("private-registry")
    (base / "htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    extra = f"auth:\n  htpasswd:\n    realm: private\n    path: {base / 'htpasswd'}\n"
    with LocalRegistry(base / "registry", extra_config=extra) as reg:
        yield reg
