"""`muelle build --platform` and `FROM --platform`: the variant is picked from the
registry's index; a platform the registry does not have, or a single-platform image of
another one, is refused naming what there is; RUN in a stage this host cannot execute is
refused clearly (no emulator), while COPY from it works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.images import push_multi_platform
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def multi(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An index with an amd64 and an arm64 busybox whose /etc/arch names its platform."""
    tmp = tmp_path_factory.mktemp("multi-build")
    return push_multi_platform(registry.url, tmp, "demo/multi-build:1")["ref"]


def _ctx(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "f").write_text("file\n")
    return ctx


def test_platform_variant_is_picked_from_the_index(engine: Engine, image: str, multi: str,
                                                   tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, f"FROM {multi}\nCOPY f /f\n")
    engine.cli("build", "--platform", "linux/arm64", "-t", "plat/arm:1", str(ctx))
    try:
        doc = json.loads(engine.cli("inspect", "plat/arm:1").stdout)[0]
        assert doc["Architecture"] == "arm64"
        # A host-platform stage copies from an arm64 stage: /etc/arch tells which variant.
        ctx2 = _ctx(tmp_path / "two", f"FROM --platform=linux/arm64 {multi} AS arm\n"
                                      f"FROM {image}\nCOPY --from=arm /etc/arch /arch\n"
                                      'CMD ["cat", "/arch"]\n')
        engine.cli("build", "-t", "plat/mixed:1", str(ctx2))
        assert engine.cli("run", "--rm", "plat/mixed:1").stdout == "arm64"
        assert json.loads(engine.cli("inspect", "plat/mixed:1").stdout)[0][
            "Architecture"] == "amd64"
    finally:
        engine.cli("rmi", "plat/arm:1", "plat/mixed:1", check=False)


def test_missing_variants_are_refused_naming_what_there_is(engine: Engine, image: str,
                                                           multi: str,
                                                           tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, f"FROM {multi}\n")
    done = engine.cli("build", "--platform", "linux/s390x", str(ctx), check=False)
    assert done.returncode != 0
    assert "no matching manifest for linux/s390x" in done.stderr
    assert "linux/amd64" in done.stderr and "linux/arm64" in done.stderr
    # The single-platform busybox has no arm64 image: said so, not built as amd64.
    ctx = _ctx(tmp_path / "single", f"FROM {image}\nENV A=1\n")
    done = engine.cli("build", "--platform", "linux/arm64", str(ctx), check=False)
    assert done.returncode != 0
    assert f"{image} has no image for linux/arm64" in done.stderr
    assert "linux/amd64 only" in done.stderr


def test_run_in_a_foreign_stage_is_refused_clearly(engine: Engine, multi: str,
                                                   tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, f"FROM --platform=linux/arm64 {multi}\nRUN true\n")
    done = engine.cli("build", str(ctx), check=False)
    assert done.returncode != 0
    assert "RUN in a linux/arm64 stage" in done.stderr and "no emulator" in done.stderr
    assert engine.cli("ps", "-aq").stdout.strip() == ""
