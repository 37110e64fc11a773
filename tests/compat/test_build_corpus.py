"""The build corpus (tests/e2e/build_corpus/) through the docker CLI's classic builder
(DOCKER_BUILDKIT=0) against muelle's Docker API and against a private dockerd: the same
step lines, config, history and exported rootfs (tests/support/build_oracle.py); a case
that needs BuildKit is built by the dockerd's BuildKit, compared without step lines and
history text."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.conftest import DockerCli
from tests.support import build_corpus as corpus
from tests.support import build_oracle as oracle


@pytest.fixture(scope="module")
def ours(muelle_cli: DockerCli, pulled: str) -> DockerCli:
    return DockerCli(muelle_cli.binary, dict(muelle_cli.env, DOCKER_BUILDKIT="0"))


@pytest.fixture(scope="module")
def theirs(dockerd_cli: DockerCli) -> DockerCli:
    return DockerCli(dockerd_cli.binary, dict(dockerd_cli.env, DOCKER_BUILDKIT="0"))


# The cases whose path through the Docker API differs from muelle's own CLI: the context
# tar the docker CLI makes (.dockerignore, symlinks, hardlinks), build args, owners by name,
# stages and images, triggers, --chmod. All 18 pass here too; the rest would double the
# corpus's share of the suite for the same builder code.
VIA_API = {"args-before-from", "chmod-buildkit", "chown-by-name", "dockerignore", "hardlinks",
           "multistage", "onbuild", "symlinks"}


@pytest.mark.parametrize("case", corpus.params(VIA_API))
def test_cli_builds_corpus_as_dockerd(case: str, ours: DockerCli, theirs: DockerCli,
                                      pulled: str, tmp_path: Path) -> None:
    ctx = corpus.context(case, tmp_path, pulled)
    ref = f"corpus-cli/{case}:1"
    argv = ("build", "-t", ref, *corpus.build_args(case, pulled), str(ctx))
    # What needs BuildKit on Docker's side: its BuildKit (muelle's API takes it classic).
    docker_side = theirs if case not in corpus.BUILDKIT else DockerCli(
        theirs.binary, dict(theirs.env, DOCKER_BUILDKIT="1"))
    names = (f"corpus-cli-{case}-ours", f"corpus-cli-{case}-theirs")
    try:
        mine = oracle.completed(ours(*argv, check=False, timeout=300))
        docker = oracle.completed(docker_side(*argv, check=False, timeout=300))
        classic = case not in corpus.BUILDKIT
        if classic:
            assert oracle.step_lines(mine) == oracle.step_lines(docker) != []
        oracle.assert_same_images(ours, theirs, ref, tmp_path, names=names, history=classic)
    finally:
        ours("rm", "-f", names[0], check=False)
        ours("rmi", ref, check=False)
        theirs("rm", "-f", names[1], check=False)
        theirs("rmi", ref, check=False)
