"""Shared fixtures: one real registry with test images, and whole muelle engines.

    registry      the real distribution registry on loopback (session-wide)
    busybox_ref   reference of a busybox image pushed to it ("127.0.0.1:P/demo/busybox:1")
    engine        a whole engine (four services) shared by a module's tests
    fresh_engine  a whole engine for one test
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.images import build_busybox_layout, push_layout
from tests.support.registry import LocalRegistry

# Tests build their own engines; settings meant for the host's engine must not leak in.
for _var in ("MUELLE_ROOT", "MUELLE_RUN", "MUELLE_HOST", "MUELLE_CONFIG"):
    os.environ.pop(_var, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root: real namespaces, cgroups and mounts")
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = tmp_path_factory.mktemp("layouts") / "busybox"
    build_busybox_layout(layout, tag="1")
    return layout


@pytest.fixture(scope="session")
def busybox_ref(registry: LocalRegistry, busybox_layout: Path) -> str:
    ref = f"{registry.host}/demo/busybox:1"
    push_layout(busybox_layout, ref, tag="1")
    return ref


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with Engine() as eng:
        yield eng


@pytest.fixture
def fresh_engine() -> Iterator[Engine]:
    with Engine() as eng:
        yield eng
