"""docker diff from an upper layer: added, changed, deleted; the runtime's mount targets and
a directory copied up only for them are left out; symlinks are listed, never followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.imagestore.changes import ADDED, CHANGED, DELETED, changes


@pytest.mark.skipif(os.geteuid() != 0, reason="a whiteout is a 0/0 character device (root)")
def test_kinds_and_what_is_left_out(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("bin", "etc", "tmp"):
        (lower / d).mkdir(parents=True)
    (lower / "bin" / "true").write_text("x")
    (lower / "bin" / "sh").write_text("x")
    (upper / "bin").mkdir(parents=True)
    os.mknod(upper / "bin" / "true", 0o600 | 0o020000, os.makedev(0, 0))  # whiteout
    (upper / "bin" / "sh").write_text("changed")
    (upper / "etc").mkdir()
    (upper / "etc" / "hosts").write_text("")  # a mount target the runtime made
    (upper / "tmp" / "new").mkdir(parents=True)
    (upper / "tmp" / "new" / "out").symlink_to("/etc/passwd")  # listed, not followed
    assert changes(str(upper), [str(lower)]) == [
        ("/bin", CHANGED), ("/bin/sh", CHANGED), ("/bin/true", DELETED),
        ("/tmp", CHANGED), ("/tmp/new", ADDED), ("/tmp/new/out", ADDED)]
