"""Builds against a whole engine, beyond tests/e2e/test_build.py: COPY --from with
wildcards, stages built at once."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.engine import CLI, Engine

pytestmark = pytest.mark.root


def _ctx(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


def test_copy_from_with_wildcards(engine: Engine, image: str, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, f"FROM {image} AS build\n"
                         "RUN mkdir -p /out/sub && cd /out && echo a > a.txt && echo b > b.txt"
                         " && echo c > c.log && echo d > sub/d.txt\n"
                         f"FROM {image}\nCOPY --from=build /out/*.txt /txt/\n"
                         "COPY --from=build /out/s?b /sub-copy\n"
                         'CMD ["sh", "-c", "ls /txt /sub-copy; cat /txt/*"]\n')
    engine.cli("build", "-t", "more/wild:1", str(ctx))
    try:
        out = engine.cli("run", "--rm", "more/wild:1").stdout
        assert out == "/sub-copy:\nd.txt\n\n/txt:\na.txt\nb.txt\na\nb\n"
    finally:
        engine.cli("rmi", "more/wild:1", check=False)
    bad = _ctx(tmp_path / "bad", f"FROM {image} AS build\nFROM {image}\n"
                                 "COPY --from=build /etc/*.nope /x/\n")
    done = engine.cli("build", str(bad), check=False)
    assert done.returncode != 0
    assert "no source files were specified: /etc/*.nope" in done.stderr


def test_independent_stages_run_at_once(engine: Engine, image: str, tmp_path: Path) -> None:
    """Shown by events, not time: each stage's RUN waits for a /go file that the test puts
    in only once it has seen both steps' containers running together. Built one stage
    after the other, the second container never appears while the first waits."""
    wait = "while [ ! -e /go ]; do sleep 0.05; done; rm /go"
    ctx = _ctx(tmp_path, f"FROM {image} AS a\nRUN echo a-up; {wait}; echo a > /a-done\n"
                         f"FROM {image} AS b\nRUN echo b-up; {wait}; echo b > /b-done\n"
                         f"FROM {image}\nCOPY --from=a /a-done /a\nCOPY --from=b /b-done /b\n"
                         'CMD ["cat", "/a", "/b"]\n')
    proc = subprocess.Popen([CLI, "build", "-t", "more/par:1", str(ctx)], env=engine.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    together: list[str] = []
    try:
        for _ in range(600):  # bounded: up to ~60 s of polls, ends at the first sighting
            running = engine.cli("ps", "-q").stdout.split()
            if len(running) == 2:
                together = running
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        # Let the steps end either way (a sequential builder: one at a time).
        while proc.poll() is None:
            for cid in engine.cli("ps", "-q").stdout.split():
                engine.cli("exec", cid, "touch", "/go", check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        assert proc.returncode == 0, out + err
        assert len(together) == 2, "the two stages' RUN containers never ran together"
        # The output is the sequential one: stage a's step whole before stage b's.
        assert out.index("a-up") < out.index("Step 3/8") < out.index("b-up")
        assert engine.cli("run", "--rm", "more/par:1").stdout == "a\nb\n"
    finally:
        engine.cli("rmi", "more/par:1", check=False)


def test_builder_prune_removes_cached_steps_and_their_images(engine: Engine, image: str,
                                                             tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, f"FROM {image}\nRUN echo one > /one\nRUN echo two > /two\n"
                         "ENV DONE=1\n")

    def dangling(*flags: str) -> list[str]:
        rows = engine.cli("images", *flags, "--format", "{{.Repository}} {{.ID}}").stdout
        return [ln.split()[1] for ln in rows.splitlines() if ln.startswith("<none>")]

    before = set(dangling("-a"))  # other tests' builds in this module's engine
    engine.cli("build", "-t", "more/prune:1", str(ctx))
    try:
        steps = set(dangling("-a")) - before
        assert len(steps) == 2  # the two RUN steps' images (ENV's is the tagged one)
        assert not steps & set(dangling())  # intermediate: hidden without -a, as Docker
        out = engine.cli("builder", "prune", "-f").stdout
        assert out.startswith("Deleted build cache objects:\n") and "reclaimed space" in out
        assert not steps & set(dangling("-a"))
        assert engine.cli("run", "--rm", "more/prune:1", "cat", "/one", "/two").stdout == \
            "one\ntwo\n"
        # The steps are no longer cached: they run again.
        again = engine.cli("build", "-t", "more/prune:1", str(ctx)).stdout
        assert "Using cache" not in again.split("Step 3/4")[0]
        assert "Running in" in again
        # -a forgets every step, the tagged image's too (the image stays).
        engine.cli("builder", "prune", "-a", "-f")
        again = engine.cli("build", "-t", "more/prune:1", str(ctx)).stdout
        assert "Using cache" not in again
    finally:
        engine.cli("rmi", "more/prune:1", check=False)
        engine.cli("builder", "prune", "-a", "-f", check=False)


def test_image_prune_keeps_the_steps_of_kept_images(engine: Engine, image: str,
                                                    tmp_path: Path) -> None:
    """`image prune` removes a dangling image without children (a rebuild's old last
    step) but keeps the step images a tagged image was built from, as Docker keeps images
    with children: the next build still finds them in its cache."""
    ctx = _ctx(tmp_path, f"FROM {image}\nRUN echo one > /one\nRUN echo two > /two\n"
                         "COPY late.txt /\n", {"late.txt": "0\n"})

    def ids(*flags: str) -> set[str]:
        return set(engine.cli("images", "-q", "--no-trunc", *flags).stdout.split())

    before = ids("-a")  # other tests' builds in this module's engine
    engine.cli("build", "-t", "more/keep:1", str(ctx))
    try:
        old = engine.cli("inspect", "-f", "{{.Id}}", "more/keep:1").stdout.strip()
        (ctx / "late.txt").write_text("1\n")
        engine.cli("build", "-t", "more/keep:1", str(ctx))
        new = engine.cli("inspect", "-f", "{{.Id}}", "more/keep:1").stdout.strip()
        assert old != new and old in ids("-a")
        steps = ids("-a") - ids() - before  # the RUN steps' images: hidden (children)
        assert len(steps) == 2
        engine.cli("image", "prune", "-f")
        assert old not in ids("-a")  # dangling, no child: pruned, as Docker does
        assert steps <= ids("-a")
        again = engine.cli("build", "-t", "more/keep:1", str(ctx)).stdout
        assert again.count("Using cache") == 3, again
        assert engine.cli("inspect", "-f", "{{.Id}}", "more/keep:1").stdout.strip() == new
    finally:
        engine.cli("rmi", "more/keep:1", check=False)
        engine.cli("builder", "prune", "-a", "-f", check=False)
