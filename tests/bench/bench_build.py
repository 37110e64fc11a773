"""Dockerfile builds side by side: ``muelle build`` vs ``DOCKER_BUILDKIT=0 docker build``
(the classic builder of the session's dockerd) of the same corpus, in one run. Targets of
issue 16: a cold build of the corpus at most 1.0x Docker's, a rebuild after one late file
changed at most 0.5x.

1. cold: every Dockerfile of the corpus with ``--no-cache`` (the base image is stored on
   both sides; each step runs or copies again), one sample = the whole corpus;
2. rebuild: the corpus built once (untimed), then per round one file that only the last
   COPY of each Dockerfile reads is rewritten (untimed) and the corpus rebuilt: every
   step but the last comes from the cache.

Both sides get the same context directories; the CLIs send them whole (no .dockerignore).
Leftovers (tags, intermediate images, the cache) are removed at the end on both sides.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.bench.harness import Contender, Settings, emit, run_rounds, timed
from tests.bench.sides import MARKS, require, run_quiet
from tests.support.docker import Dockerd
from tests.support.engine import CLI, Engine

pytestmark = MARKS

# The corpus: what builds usually do (RUN, COPY of many files, multi-stage, metadata),
# each ending with a COPY of late.txt, the file the rebuild changes.
CORPUS: dict[str, str] = {
    "run-steps": """\
FROM {base}
RUN mkdir -p /app/bin && echo one > /app/one
RUN for i in 1 2 3 4 5 6 7 8; do echo $i > /app/n$i; done
RUN rm /app/one && ln -s /app/n1 /app/link
COPY late.txt /app/
""",
    "copy-tree": """\
FROM {base}
WORKDIR /srv
COPY src/ ./src/
COPY --chown=nobody:nogroup src/a /owned/
COPY late.txt ./
""",
    "multi-stage": """\
FROM {base} AS build
RUN mkdir /out && for i in 1 2 3 4; do echo $i > /out/f$i; done
FROM {base} AS other
RUN echo other > /other
FROM {base}
COPY --from=build /out/ /opt/out/
COPY --from=other /other /other
COPY late.txt /
""",
    "metadata": """\
FROM {base}
ARG VERSION=1
ENV APP=/app VERSION=$VERSION
LABEL org.example.name=bench org.example.version=$VERSION
WORKDIR /app
USER nobody
EXPOSE 8080 9090/udp
VOLUME /data
HEALTHCHECK --interval=30s CMD ["true"]
ENTRYPOINT ["sh", "-c"]
CMD ["echo hi"]
COPY late.txt /app/
""",
    "add-tar": """\
FROM {base}
ADD bundle.tar /unpacked/
RUN ls -R /unpacked > /listing
COPY late.txt /
""",
}


def _contexts(root: Path, base: str, smoke: bool) -> list[Path]:
    """One context directory per Dockerfile of the corpus (the same files for both)."""
    import tarfile

    out = []
    names = list(CORPUS)[:2] if smoke else list(CORPUS)
    for name in names:
        ctx = root / name
        src = ctx / "src"
        for d in range(4):
            (src / f"d{d}").mkdir(parents=True, exist_ok=True)
            for f in range(25):
                (src / f"d{d}" / f"f{f}.txt").write_text(f"{name} {d} {f}\n" * 20)
        (src / "a").write_text("a\n")
        (ctx / "late.txt").write_text("0\n")
        bundle = root / f"{name}-bundle"
        (bundle / "inner").mkdir(parents=True, exist_ok=True)
        (bundle / "inner" / "file").write_text("from the tar\n")
        with tarfile.open(ctx / "bundle.tar", "w") as tar:
            tar.add(bundle / "inner", arcname="inner")
        shutil.rmtree(bundle)
        (ctx / "Dockerfile").write_text(CORPUS[name].format(base=base))
        out.append(ctx)
    return out


def _builder(argv: Callable[[Path, str], list[str]], env: dict[str, str],
             contexts: list[Path], extra: tuple[str, ...] = ()) -> Callable[[], None]:
    def build_all() -> None:
        for ctx in contexts:
            run_quiet([*argv(ctx, f"bench/build-{ctx.name}:1"), *extra], env=env,
                      timeout=600)
    return build_all


def _sides(request: pytest.FixtureRequest, settings: Settings, root: Path
           ) -> list[tuple[str, Callable[[Path, str], list[str]], dict[str, str],
                           list[Path]]]:
    """(name, argv of one build, env, contexts) of each side."""
    sides: list[tuple[str, Callable[[Path, str], list[str]], dict[str, str], list[Path]]] = []
    if settings.wants("muelle"):
        engine: Engine = request.getfixturevalue("muelle_engine")
        base = request.getfixturevalue("muelle_busybox")
        sides.append(("muelle", lambda ctx, tag: [CLI, "build", "-q", "-t", tag, str(ctx)],
                      engine.env, _contexts(root / "muelle", base, settings.smoke)))
    if settings.wants("docker"):
        dockerd: Dockerd = request.getfixturevalue("dockerd")
        base = request.getfixturevalue("docker_busybox")
        sides.append(("docker", lambda ctx, tag: dockerd.argv("build", "-q", "-t", tag,
                                                                str(ctx)),
                      dict(dockerd.env(), DOCKER_BUILDKIT="0"),
                      _contexts(root / "docker", base, settings.smoke)))
    return sides


def _clean(request: pytest.FixtureRequest, settings: Settings) -> None:
    tags = [f"bench/build-{name}:1" for name in CORPUS]
    if settings.wants("muelle"):
        engine: Engine = request.getfixturevalue("muelle_engine")
        for tag in tags:
            engine.cli("rmi", tag, check=False)
        engine.cli("builder", "prune", "-a", "-f", check=False)
    if settings.wants("docker"):
        dockerd: Dockerd = request.getfixturevalue("dockerd")
        for tag in tags:
            dockerd.docker("rmi", tag, check=False)
        dockerd.docker("image", "prune", "-f", check=False)


def _measure(name: str, contenders: list[Contender], command: str, target: str,
             sides: list[Any], settings: Settings, request: pytest.FixtureRequest) -> None:
    try:
        result = run_rounds(name, require(contenders), pairs=settings.pairs,
                            warmup=settings.warmup,
                            meta={"command": command,
                                  "dockerfiles": [c.name for c in sides[0][3]],
                                  "target": f"muelle/docker <= {target}"})
        emit(result, settings)
    finally:
        _clean(request, settings)


def test_build_cold(settings: Settings, request: pytest.FixtureRequest,
                    tmp_path: Path) -> None:
    sides = _sides(request, settings, tmp_path)
    contenders = [Contender(name, timed(_builder(argv, env, ctxs, ("--no-cache",))))
                  for name, argv, env, ctxs in sides]
    _measure("build-cold", contenders, "build --no-cache of the corpus", "1.0", sides,
             settings, request)


def test_rebuild_after_a_late_change(settings: Settings, request: pytest.FixtureRequest,
                                     tmp_path: Path) -> None:
    sides = _sides(request, settings, tmp_path)
    counter = itertools.count(1)
    contenders = []
    for name, argv, env, ctxs in sides:
        build_all = _builder(argv, env, ctxs)
        build_all()  # the cache, untimed

        def change(ctxs: list[Path] = ctxs) -> None:
            n = next(counter)
            for ctx in ctxs:
                (ctx / "late.txt").write_text(f"{n}\n")

        contenders.append(Contender(name, timed(build_all, setup=change)))
    _measure("build-rebuild", contenders, "build of the corpus after late.txt changed",
             "0.5", sides, settings, request)
