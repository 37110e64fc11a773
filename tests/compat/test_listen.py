"""Where the Docker API listens: the unix socket (0660, root) and loopback TCP when asked."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from services.core import launcher
from services.core.errors import InvalidArgument
from services.dockerapi.main import tcp_address
from tests.compat.conftest import CLIS
from tests.support.engine import Engine
from tests.support.registry import free_port


def test_the_socket_is_0660_root(docker_engine: Engine) -> None:
    st = os.stat(docker_engine.cfg.docker_socket())
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0


@pytest.mark.skipif(not CLIS, reason="no docker CLI")
def test_loopback_tcp_when_configured(tmp_path: Path) -> None:
    port = free_port()
    with Engine(services=launcher.ALL,
                extra_config=f'[dockerapi]\ntcp = "127.0.0.1:{port}"\n') as eng:
        proc = subprocess.run([CLIS[0], "-H", f"tcp://127.0.0.1:{port}", "version", "--format",
                               "{{.Server.APIVersion}}"], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ, DOCKER_CONFIG=str(tmp_path)))
        assert (proc.returncode, proc.stdout.strip()) == (0, "1.41"), proc.stderr
        assert eng.cfg.docker_socket().exists()


@pytest.mark.parametrize("address", ["0.0.0.0:2375", "10.1.2.3:2375", "example.com:2375",
                                     "127.0.0.1"])
def test_tcp_other_than_loopback_is_refused(address: str) -> None:
    with pytest.raises(InvalidArgument, match="loopback"):
        tcp_address(address)
    assert tcp_address("tcp://127.0.0.1:2375") == ("127.0.0.1", 2375)
