"""cpuset lists: Docker's --cpuset-cpus / --cpuset-mems forms and availability."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.core import cpuset
from vocab.errors import InvalidArgument


@pytest.mark.parametrize("text, want", [
    ("0", {0}), ("0-2", {0, 1, 2}), ("0,2", {0, 2}), ("0-1,3,5-6", {0, 1, 3, 5, 6}),
    ("2-2", {2}),
])
def test_lists_parse(text: str, want: set[int]) -> None:
    assert cpuset.parse(text, "cpus") == want


@pytest.mark.parametrize("text", ["", "a", "1-", "-1", "0,,1", "2-1", "0-8192", "1 ", "+1",
                                  "٣"])
def test_bad_lists_are_refused_in_dockers_words(text: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(f"Invalid value {text} for cpuset mems")):
        cpuset.parse(text, "mems")


def test_availability_is_the_hosts(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "online").write_text("0-3\n")
    cpuset.check_available("1-3", "cpus", tmp_path)
    with pytest.raises(InvalidArgument,
                       match="Requested CPUs are not available - requested 2-4, available: 0-3"):
        cpuset.check_available("2-4", "cpus", tmp_path)
    # no NUMA: the one node 0
    cpuset.check_available("0", "mems", tmp_path)
    with pytest.raises(InvalidArgument, match="memory nodes are not available"):
        cpuset.check_available("1", "mems", tmp_path)
