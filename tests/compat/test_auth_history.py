"""docker login (POST /auth) and push to a private htpasswd registry, and docker history,
against muelle's Docker API and a private dockerd: same exit codes and outputs."""

from __future__ import annotations

import os
from pathlib import Path

from tests.compat.conftest import PASSWORD, USER, DockerCli, docker_cli
from tests.support.docker import Dockerd
from tests.support.engine import Engine
from tests.support.registry import LocalRegistry


def _cli(host: str, config: Path) -> DockerCli:
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_CONFIG=str(config))
    env.pop("DOCKER_CONTEXT", None)
    return DockerCli(docker_cli(), env)


def _login_push(host: str, config: Path, image: str, reg: LocalRegistry, repo: str
                ) -> list[tuple[int, str]]:
    """(exit code, the line that matters) of each step; the repository name masked."""
    docker = _cli(host, config)
    login = ["login", "-u", USER, "--password-stdin", reg.host]
    bad = docker(*login, input="wrong\n", check=False)
    good = docker(*login, input=PASSWORD + "\n", check=False)
    target = f"{reg.host}/{repo}:1"
    tag = docker("tag", image, target, check=False)
    push = docker("push", target, check=False)
    rmi = docker("rmi", target, check=False)
    # the daemon's words differ (dockerd names the URL it tried): who refused is the same
    return [(bad.returncode, bad.stderr.strip().splitlines()[-1].split(":")[0]),
            (good.returncode, good.stdout.strip().splitlines()[-1]),
            (tag.returncode, ""),
            (push.returncode, push.stdout.splitlines()[0].replace(repo, "REPO")),
            (rmi.returncode, "")]


def test_login_then_push_to_a_private_registry_as_on_dockerd(
        docker_engine: Engine, dockerd: Dockerd, pulled: str, private_registry: LocalRegistry,
        tmp_path: Path) -> None:
    on_muelle = _login_push(docker_engine.docker_host, tmp_path / "m", pulled,
                            private_registry, "from/muelle")
    on_dockerd = _login_push(dockerd.host, tmp_path / "d", pulled, private_registry,
                             "from/dockerd")
    assert on_muelle[1] == (0, "Login Succeeded")
    assert on_muelle[3] == (0, f"The push refers to repository [{private_registry.host}/REPO]")
    assert on_muelle == on_dockerd


def test_history_as_on_dockerd(docker_engine: Engine, dockerd: Dockerd, pulled: str,
                               tmp_path: Path) -> None:
    fmt = "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"
    outs = []
    for host in (docker_engine.docker_host, dockerd.host):
        outs.append(_cli(host, tmp_path / "h")("history", "--no-trunc", "--format", fmt,
                                               pulled).stdout)
    assert outs[0].split("|")[:2] == outs[1].split("|")[:2]
    assert outs[0].count("\n") == outs[1].count("\n") >= 1
    missing = _cli(docker_engine.docker_host, tmp_path / "h")("history", "nosuch:1",
                                                              check=False)
    assert missing.returncode == 1 and "No such image: nosuch:1" in missing.stderr
