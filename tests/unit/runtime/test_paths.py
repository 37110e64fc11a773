"""The runtime's pathlib- and re-free helpers answer as pathlib and re do (they replace them
on the create path): paths.py against PurePosixPath, hostmounts.unescape against re.sub."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from services.runtime import hostmounts, paths

PATHS = st.text(alphabet="/.ab", max_size=12)


@given(PATHS)
def test_clean_is_how_pathlib_writes_a_path(text: str) -> None:
    assert paths.clean(text) == str(PurePosixPath(text))


@given(PATHS, PATHS)
def test_under_is_pathlib_division(base: str, path: str) -> None:
    assert paths.under(paths.clean(base), path) == str(PurePosixPath(base) / path)


@given(PATHS)
def test_absolute_is_path_absolute(text: str) -> None:
    assert paths.absolute(text) == str(Path(text).absolute())


def test_absolute_from_the_root(tmp_path: Path) -> None:
    home = os.getcwd()
    try:
        os.chdir("/")
        assert paths.absolute("a/./b/") == str(Path("a/./b/").absolute()) == "/a/b"
        assert paths.absolute(".") == "/"
    finally:
        os.chdir(home)


@given(st.text(alphabet="ab\\0127893 ", max_size=16))
def test_unescape_is_the_octal_re_sub(field: str) -> None:
    expected = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
    assert hostmounts.unescape(field) == expected
