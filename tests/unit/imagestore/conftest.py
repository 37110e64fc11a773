"""Fixtures shared by the image store's GC and lease tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.imagestore.store import ImageStore
from tests.support.images import Entry, Layer, build_layout, busybox_layer
from tests.unit.imagestore.fakes import LayoutRegistry


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two images on the same busybox base layer, each with its own top layer."""
    base = tmp_path_factory.mktemp("layouts")
    out = {}
    for name in ("a", "b"):
        out[name] = base / name
        build_layout(out[name], [busybox_layer(),
                                 Layer([Entry(f"etc/{name}", data=name.encode() * 10)])],
                     tag="1")
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(tmp_path / "root", LayoutRegistry(tmp_path))
    yield s
    s.close()
