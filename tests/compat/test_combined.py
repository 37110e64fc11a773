"""The Docker API inside muelle-engine (one process with the four services)."""

from __future__ import annotations

import os
import subprocess

from engine import launcher
from tests.compat.conftest import docker_cli
from tests.support.engine import Engine


def test_docker_run_against_the_combined_engine(busybox_ref: str) -> None:
    with Engine(services=launcher.ALL, combined=True) as eng:
        env = dict(os.environ, DOCKER_HOST=eng.docker_host)
        run = subprocess.run([docker_cli(), "run", "--rm", busybox_ref, "echo", "one process"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert (run.returncode, run.stdout) == (0, "one process\n"), run.stderr
        assert "Unable to find image" in run.stderr  # pulled through the same API
