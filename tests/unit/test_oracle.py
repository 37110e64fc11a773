"""The tree oracle (tests/support/oracle.py) sees every kind of difference it claims to."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support.oracle import compare_trees


def tree(root: Path) -> Path:
    root.mkdir()
    (root / "f").write_bytes(b"same")
    os.link(root / "f", root / "hl")
    (root / "d").mkdir(mode=0o755)
    os.symlink("f", root / "s")
    os.mkfifo(root / "p")
    os.mknod(root / "c", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.setxattr(root / "f", "user.k", b"v")
    for p in (root / "f", root / "d", root / "p", root / "c"):
        os.utime(p, (1, 1))
    os.utime(root, (1, 1))
    return root


def test_identical_trees_have_no_difference(tmp_path: Path) -> None:
    assert compare_trees(tree(tmp_path / "a"), tree(tmp_path / "b")) == []


def test_every_field_is_compared(tmp_path: Path) -> None:
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    os.unlink(b / "hl")
    (b / "hl").write_bytes(b"same")
    os.chmod(b / "d", 0o1755)
    os.chown(b / "d", 5, 6)
    os.unlink(b / "s")
    os.symlink("other", b / "s")
    os.unlink(b / "c")
    os.mknod(b / "c", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    os.setxattr(b / "f", "user.k", b"w")
    os.unlink(b / "p")
    (b / "p").mkdir()
    (b / "extra").write_text("x")
    for p in (b / "f", b / "d", b / "p", b / "c", b / "hl", b):
        os.utime(p, (1, 1))
    diffs = compare_trees(a, b)
    text = "\n".join(diffs)
    for expected in ("f: xattrs:", "f: links: left ('hl',) != right ()", "d: mode:",
                     "d: uid:", "d: gid:", "s: target:", "c: device:", "p: type:",
                     "extra: only in right (file)"):
        assert expected in text, (expected, text)
    assert not compare_trees(a, a)
