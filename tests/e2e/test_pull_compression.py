"""A layer the store holds under one compression, pulled again under another (gzip and
zstd blobs of the same diff_id): the snapshot that exists satisfies it, and the image
records every blob its manifest names, so save and push still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.images import Entry, Layer, build_layout, busybox_layer, push_layout
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def refs(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The same busybox layer as gzip and as zstd, and a zstd base with a gzip layer on."""
    tmp: Path = tmp_path_factory.mktemp("compression")
    out = {}
    extra = Layer([Entry("etc/extra", data=b"more\n")])
    for name, layers, kinds in (("gzip", [busybox_layer()], "gzip"),
                                ("zstd", [busybox_layer()], "zstd"),
                                ("based", [busybox_layer(), extra], ["zstd", "gzip"])):
        build_layout(tmp / name, layers, tag="1", compression=kinds)
        out[name] = f"{registry.host}/compression/{name}:1"
        push_layout(tmp / name, out[name], tag="1")
    return out


def _pull_run_save(engine: Engine, ref: str, tmp: Path) -> str:
    pulled = engine.cli("pull", ref, check=False)
    assert pulled.returncode == 0, pulled.stderr
    assert engine.cli("run", "--rm", ref, "echo", "ran").stdout == "ran\n"
    engine.cli("save", "-o", str(tmp / "img.tar"), ref)  # every blob of the manifest
    return pulled.stdout


@pytest.mark.parametrize("order", [("gzip", "zstd"), ("zstd", "gzip"), ("gzip", "based")])
def test_pull_of_a_layer_held_under_another_compression(fresh_engine: Engine,
                                                        refs: dict[str, str],
                                                        order: tuple[str, str],
                                                        tmp_path: Path) -> None:
    first, second = (refs[name] for name in order)
    _pull_run_save(fresh_engine, first, tmp_path)
    out = _pull_run_save(fresh_engine, second, tmp_path)
    assert "Already exists" in out
    again = fresh_engine.cli("pull", second).stdout  # a retry changes nothing
    assert f"Status: Image is up to date for {second}" in again
    assert "no problems found" in fresh_engine.cli("system", "check").stdout
