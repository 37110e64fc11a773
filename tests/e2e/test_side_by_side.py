"""Two engines with their own roots and run dirs on one host do not see each other."""

from __future__ import annotations

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root


def test_two_engines_side_by_side(busybox_ref: str) -> None:
    with Engine() as one, Engine() as two:
        one.cli("pull", busybox_ref)
        assert "demo/busybox" in one.cli("images").stdout
        assert "demo/busybox" not in two.cli("images").stdout
        cid = one.cli("run", "-d", "--name", "only-here", busybox_ref, "sleep", "30").stdout
        assert "only-here" not in two.cli("ps", "-a").stdout
        two.cli("pull", busybox_ref)
        assert two.cli("run", "--rm", busybox_ref, "echo", "hi").stdout.strip() == "hi"
        one.cli("rm", "-f", cid.strip())
