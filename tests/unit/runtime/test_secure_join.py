"""secure_join never leaves the rootfs: odd and even ``..`` counts, one-level ``..`` links."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.paths import secure_join
from tests.support.escapes import ESCAPES, build


@pytest.mark.parametrize("path", ESCAPES)
def test_escape_lands_on_the_rootfs_host_dir(tmp_path: Path, path: str) -> None:
    layout = build(tmp_path)
    assert secure_join(str(layout.root), path) == f"{layout.root}/host"
    assert secure_join(str(layout.root), path + "/passwd") == f"{layout.root}/host/passwd"
    # A component that does not exist yet is appended below the resolved parent.
    assert secure_join(str(layout.root), path + "/new/x") == f"{layout.root}/host/new/x"


@pytest.mark.parametrize(("path", "want"), [
    ("..", ""), ("../..", ""), ("../../..", ""), ("/up1", ""), ("/up3", ""),
    ("/etc/..", ""), ("/etc/../..", ""), ("/etc/deep/../..", ""), ("/etc/deep/../../etc", "/etc"),
])
def test_dotdot_stops_at_the_root(tmp_path: Path, path: str, want: str) -> None:
    layout = build(tmp_path)
    assert secure_join(str(layout.root), path).rstrip("/") == f"{layout.root}{want}"
