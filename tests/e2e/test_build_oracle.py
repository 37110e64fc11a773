"""The same Dockerfile built by muelle and by a private dockerd's classic builder
(DOCKER_BUILDKIT=0): the image configs agree field by field, the history's empty_layer
flags agree, and the exported root filesystems hold the same entries with the same
types, modes and owners."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import build_oracle as oracle
from tests.support.docker import Dockerd
from tests.support.engine import Engine

pytestmark = pytest.mark.root


def test_build_matches_dockers_classic_builder(engine: Engine, image: str, dockerd: Dockerd,
                                               tmp_path: Path) -> None:
    ctx = oracle.context(tmp_path)
    dockerd.docker("pull", image)
    env = dict(dockerd.env(), DOCKER_BUILDKIT="0")
    theirs = subprocess.run(dockerd.argv("build", "-t", "oracle/built:1", "--build-arg",
                                         f"BASE={image}", *oracle.LABEL_FLAGS, str(ctx)),
                            env=env, capture_output=True, text=True, timeout=300)
    docker_out = oracle.completed(theirs)
    ours = engine.cli("build", "-t", "oracle/built:1", "--build-arg", f"BASE={image}",
                      *oracle.LABEL_FLAGS, str(ctx))
    try:
        # The step lines are the same text.
        steps, docker_steps = oracle.step_lines(ours.stdout), oracle.step_lines(docker_out)
        assert steps == docker_steps, "\n".join(steps[-3:] + docker_steps[-3:])
        oracle.assert_same_images(engine.cli, dockerd.docker, "oracle/built:1", tmp_path)
    finally:
        engine.cli("rm", "-f", "oracle-ours", check=False)
        engine.cli("rmi", "oracle/built:1", check=False)
        dockerd.docker("rm", "-f", "oracle-theirs", check=False)
