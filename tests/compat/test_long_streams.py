"""Many long streams at once (more than the gateway's old pool of 64 workers): `docker ps`,
`docker logs` and one more `logs -f` still answer."""

from __future__ import annotations

import socket
import subprocess
import uuid

from tests.compat.conftest import DockerCli
from tests.support.engine import Engine

STREAMS = 80


def _follow(engine: Engine, name: str) -> socket.socket:
    """A `logs -f` of a quiet container, its response head read."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(30)
    sock.connect(engine.docker_host.removeprefix("unix://"))
    sock.sendall(f"GET /v1.41/containers/{name}/logs?follow=1&stdout=1&tail=0 HTTP/1.1\r\n"
                 "Host: docker\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "the connection closed before the head"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def test_more_follows_than_workers_leave_the_engine_serving(
        docker_engine: Engine, docker: DockerCli, pulled: str) -> None:
    name = f"quiet-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "--name", name, pulled, "sh", "-c",
           "read x; echo late; sleep 1000")  # quiet until stdin... which never comes
    socks: list[socket.socket] = []
    try:
        socks = [_follow(docker_engine, name) for _ in range(STREAMS + 1)]  # the last: one more
        assert name in docker("ps", "--format", "{{.Names}}", timeout=20).stdout
        short = subprocess.run([docker.binary, "logs", "--tail", "1", name], env=docker.env,
                               capture_output=True, timeout=20)
        assert short.returncode == 0
    finally:
        for s in socks:
            s.close()
        docker("rm", "-f", name)
