"""testcontainers-python against muelle's Docker API, unchanged.

Ryuk (the reaper) is disabled: its image cannot be pulled offline (COMPAT.md); the
``with`` block removes the container, as testcontainers does without Ryuk. The host is
forced to 127.0.0.1 (TC_HOST, connection mode docker_host) so that the test reaches the
published port on loopback.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from testcontainers.core.config import ConnectionMode, testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

from tests.support.engine import Engine


@pytest.fixture
def tc_env(docker_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.docker_host)
    # testcontainers reads these once, at import: set them on its config too.
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    monkeypatch.setattr(testcontainers_config, "tc_host_override", "127.0.0.1")
    # This machine has /.dockerenv: without this, testcontainers would reach the port
    # through the bridge's gateway address (which also works: COMPAT.md tc-basic).
    monkeypatch.setattr(testcontainers_config, "connection_mode_override",
                        ConnectionMode.docker_host)
    yield docker_engine


def test_container_waits_for_its_log_line(tc_env: Engine, pulled: str) -> None:
    container = DockerContainer(pulled).with_command(
        ["sh", "-c", "echo booting; sleep 0.2; echo ready to serve; sleep 60"]
    ).waiting_for(LogMessageWaitStrategy("ready to serve").with_startup_timeout(30))
    with container as c:
        stdout, _ = c.get_logs()
        assert b"ready to serve" in stdout
        cid = c.get_wrapped_container().id
    assert cid[:12] not in tc_env.cli("ps", "-aq").stdout.split()


def test_exposed_port_with_an_http_wait_is_reached_from_the_host(tc_env: Engine,
                                                                 pulled: str) -> None:
    container = DockerContainer(pulled).with_command(
        ["sh", "-c", "echo hello > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]
    ).with_exposed_ports(80).waiting_for(
        HttpWaitStrategy(80).for_status_code(200).with_startup_timeout(30))
    with container as c:
        host, port = c.get_container_host_ip(), c.get_exposed_port(80)
        assert host == "127.0.0.1" and int(port) > 0
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=10) as reply:
            assert reply.read() == b"hello\n"
        cid = c.get_wrapped_container().id
    assert cid[:12] not in tc_env.cli("ps", "-aq").stdout.split()
