"""docker-compose 1.29's extra_hosts, ulimits (both forms), shm_size and devices against
muelle's Docker API and a private dockerd: what the container sees is the same."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.compat.test_compose import Compose
from tests.support.docker import Dockerd
from tests.support.engine import Engine

APP = """\
version: "3.7"
services:
  probe:
    image: ${IMG}
    command: ["sh", "-c", "grep -w db /etc/hosts; ulimit -n; ulimit -Hn; ulimit -u;
              df -k /dev/shm | tail -n 1; stat -c '%F %t:%T' /dev/mynull"]
    extra_hosts:
      - "db:10.1.2.3"
    ulimits:
      nproc: 200
      nofile:
        soft: 1024
        hard: 2048
    shm_size: 128m
    devices:
      - "/dev/null:/dev/mynull"
"""


def _probe(side: str, host: str, image: str, tmp_path: Path) -> str:
    workdir = tmp_path / side
    (workdir / "config").mkdir(parents=True)
    (workdir / "docker-compose.yml").write_text(APP)
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_CONFIG=str(workdir / "config"), IMG=image)
    env.pop("DOCKER_CONTEXT", None)
    c = Compose(host, f"opts{uuid.uuid4().hex[:6]}", workdir, env)
    try:
        return c("run", "--rm", "-T", "probe").stdout
    finally:
        c("down")


def test_compose_host_options_as_on_dockerd(docker_engine: Engine, dockerd: Dockerd,
                                            pulled: str, tmp_path: Path) -> None:
    ours = _probe("muelle", docker_engine.docker_host, pulled, tmp_path)
    theirs = _probe("dockerd", dockerd.host, pulled, tmp_path)
    assert ours == theirs
    assert ours == ("10.1.2.3\tdb\n1024\n2048\n200\n"
                    "shm                     131072         0    131072   0% /dev/shm\n"
                    "character special file 1:3\n")
