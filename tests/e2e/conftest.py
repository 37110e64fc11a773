"""e2e fixtures: a module-wide engine that has pulled the busybox test image; a private
Docker Engine for the tests that compare with Docker (skipped when dockerd cannot start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.docker import Dockerd, DockerUnavailable
from tests.support.engine import Engine

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def image(engine: Engine, busybox_ref: str) -> str:
    """The busybox test image, pulled into the module's engine."""
    engine.cli("pull", busybox_ref)
    return busybox_ref


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    try:
        d = Dockerd().start()
    except DockerUnavailable as exc:
        pytest.skip(f"no Docker Engine here: {exc}")
    try:
        yield d
    finally:
        d.close()
