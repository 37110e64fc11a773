"""Layer entries under hostile parents stay in the snapshot: odd and even ``..`` counts and
one-level ``..`` links (the shared table in tests/support/escapes.py), with both ways of the
resolver (openat2 and the walk)."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import pytest

from services.imagestore.unpack import resolve_dir, unpack
from tests.support.escapes import ESCAPES, build, resolver_way
from tests.support.images import Entry, Layer

__all__ = ["resolver_way"]  # the fixture: every test here runs both ways

pytestmark = pytest.mark.usefixtures("resolver_way")


@pytest.mark.parametrize("path", ESCAPES)
def test_resolve_dir_stays_in_root(tmp_path: Path, path: str) -> None:
    layout = build(tmp_path)
    assert resolve_dir(str(layout.root), path, create=False) == f"{layout.root}/host"
    made = resolve_dir(str(layout.root), path + "/new", create=True)
    assert made == f"{layout.root}/host/new"
    assert layout.untouched()


@pytest.mark.parametrize("path", [p for p in ESCAPES if ".." not in p])
def test_entry_below_an_escape_link_lands_in_snapshot(tmp_path: Path, path: str) -> None:
    # The links are already in the snapshot (as an earlier entry of the layer leaves them);
    # a file written below one must land in the snapshot's /host. (Names with '..' are
    # cleaned lexically before any lookup: test_unpack covers those.)
    layout = build(tmp_path)
    raw = Layer([Entry(path.lstrip("/") + "/pwned", data=b"pwned")]).tar()
    unpack(io.BytesIO(gzip.compress(raw)), layout.root,
           "sha256:" + hashlib.sha256(raw).hexdigest(), [])
    assert (layout.root / "host" / "pwned").read_bytes() == b"pwned"
    assert layout.untouched()
