"""e2e fixtures: a module-wide engine that has pulled the busybox test image."""

from __future__ import annotations

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def image(engine: Engine, busybox_ref: str) -> str:
    """The busybox test image, pulled into the module's engine."""
    engine.cli("pull", busybox_ref)
    return busybox_ref
