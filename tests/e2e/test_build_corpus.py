"""The build corpus (tests/e2e/build_corpus/<case>/): each case built by muelle's CLI and
by a private dockerd's classic builder (DOCKER_BUILDKIT=0) in the same test. The step lines
are the same text, the image config agrees field by field (Env, Cmd, Entrypoint, WorkingDir,
User, ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, OnBuild), history's text and
empty_layer flags agree, and the exported root filesystems hold the same entries (type,
mode, owner, content or link target). A case that needs BuildKit (COPY --chmod) is built
by the dockerd's BuildKit and compared without step lines and history text.
tests/compat/test_build_corpus.py builds the corpus through the docker CLI against muelle's
Docker API."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import build_corpus as corpus
from tests.support import build_oracle as oracle
from tests.support.docker import Dockerd
from tests.support.engine import Engine

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def base(image: str, dockerd: Dockerd) -> Iterator[str]:
    """The busybox image, in both engines."""
    dockerd.docker("pull", image)
    yield image


@pytest.mark.parametrize("case", corpus.params())
def test_corpus_build_matches_dockers_classic_builder(case: str, engine: Engine, base: str,
                                                      dockerd: Dockerd,
                                                      tmp_path: Path) -> None:
    ctx = corpus.context(case, tmp_path, base)
    ref = f"corpus/{case}:1"
    argv = ("build", "-t", ref, *corpus.build_args(case, base), str(ctx))
    buildkit = "1" if case in corpus.BUILDKIT else "0"
    theirs = subprocess.run(dockerd.argv(*argv),
                            env=dict(dockerd.env(), DOCKER_BUILDKIT=buildkit),
                            capture_output=True, text=True, timeout=300)
    ours = engine.cli(*argv, check=False, timeout=300)
    names = (f"corpus-{case}-ours", f"corpus-{case}-theirs")
    try:
        docker_out, our_out = oracle.completed(theirs), oracle.completed(ours)
        if buildkit == "0":
            assert oracle.step_lines(our_out) == oracle.step_lines(docker_out) != []
        oracle.assert_same_images(engine.cli, dockerd.docker, ref, tmp_path, names=names,
                                  history=buildkit == "0")
    finally:
        engine.cli("rm", "-f", names[0], check=False)
        engine.cli("rmi", ref, check=False)
        dockerd.docker("rm", "-f", names[1], check=False)
        dockerd.docker("rmi", ref, check=False)


def test_a_rebuild_uses_the_cache_where_dockers_classic_builder_does(
        engine: Engine, base: str, dockerd: Dockerd, tmp_path: Path) -> None:
    """After each kind of change, the same steps come from the cache on both sides: a copied
    file's mtime alone keeps it (the classic builder's checksums leave mtimes out), its
    mode or bytes do not; a file not copied, or one .dockerignore leaves out, keeps it.
    (A copied file's owner counts too, but the docker CLI sends every file as 0:0, so that
    is shown over muelle's index alone: tests/unit/builder/test_streamed_cache.py.)"""
    ctx = tmp_path / "ctx"
    (ctx / "app").mkdir(parents=True)
    main = ctx / "app" / "main.py"
    main.write_text("print('hi')\n")
    (ctx / "app" / "cache.tmp").write_text("scratch\n")
    (ctx / "notes.txt").write_text("not copied\n")
    (ctx / ".dockerignore").write_text("app/*.tmp\n")
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY app/ /app/\nRUN echo built\n")
    ref = "corpus/cache:1"
    changes: list[tuple[str, Callable[[], object]]] = [
        ("nothing", lambda: None),
        ("a copied file's mtime", lambda: os.utime(main, (1e9, 1e9))),
        ("a file not copied", lambda: (ctx / "notes.txt").write_text("changed\n")),
        ("an ignored file", lambda: (ctx / "app" / "cache.tmp").write_text("changed\n")),
        ("a copied file's mode", lambda: main.chmod(0o600)),
        ("a copied file's bytes", lambda: main.write_text("print('bye')\n")),
    ]

    def cached() -> tuple[int, int]:
        argv = ("build", "-t", ref, str(ctx))
        theirs = subprocess.run(dockerd.argv(*argv),
                                env=dict(dockerd.env(), DOCKER_BUILDKIT="0"),
                                capture_output=True, text=True, timeout=300)
        ours = engine.cli(*argv, check=False, timeout=300)
        return (oracle.completed(ours).count(" ---> Using cache"),
                oracle.completed(theirs).count(" ---> Using cache"))

    try:
        cached()
        for what, change in changes:
            change()
            ours, theirs = cached()
            assert ours == theirs, f"after changing {what}: muelle {ours}, docker {theirs}"
            assert ours == (0 if what.endswith(("mode", "bytes")) else 2), what
    finally:
        engine.cli("rmi", ref, check=False)
        dockerd.docker("rmi", ref, check=False)
