"""testcontainers-python against muelle's Docker API: a container and a wait for its log.

Ryuk (the reaper) is disabled: its image cannot be pulled offline (COMPAT.md); the
container is removed by the ``with`` block, as testcontainers does without Ryuk.
"""

from __future__ import annotations

import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from tests.support.engine import Engine


def test_container_waits_for_its_log_line(docker_engine: Engine, pulled: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.docker_host)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    # testcontainers reads its settings once, at import: set the one that matters here.
    from testcontainers.core.config import testcontainers_config
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    container = DockerContainer(pulled).with_command(
        ["sh", "-c", "echo booting; sleep 0.2; echo ready to serve; sleep 60"]
    ).waiting_for(LogMessageWaitStrategy("ready to serve").with_startup_timeout(30))
    with container as c:
        stdout, stderr = c.get_logs()
        assert b"ready to serve" in stdout
        cid = c.get_wrapped_container().id
    assert cid[:12] not in docker_engine.cli("ps", "-aq").stdout.split()
