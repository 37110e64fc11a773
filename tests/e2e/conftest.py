"""e2e fixtures: a module-wide engine that has pulled the busybox test image; a private
Docker Engine for the tests that compare with Docker (make setup installs docker.io: a
dockerd that cannot start fails those tests with the reason)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.docker import Dockerd, started
from tests.support.engine import Engine

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def image(engine: Engine, busybox_ref: str) -> str:
    """The busybox test image, pulled into the module's engine."""
    engine.cli("pull", busybox_ref)
    return busybox_ref


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    d = started()
    try:
        yield d
    finally:
        d.close()
