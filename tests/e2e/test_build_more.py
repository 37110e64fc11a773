"""Builds against a whole engine, beyond tests/e2e/test_build.py: COPY --from with
wildcards."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.engine import Engine

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
