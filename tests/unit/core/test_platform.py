"""--platform values and platform comparison (vocab/platform.py)."""

from __future__ import annotations

import pytest

from vocab import platform


@pytest.mark.parametrize(("text", "want"), [
    ("linux/amd64", ("linux", "amd64", "")),
    ("linux/x86_64", ("linux", "amd64", "")),
    ("Linux/AArch64", ("linux", "arm64", "")),
    ("linux/arm/v6", ("linux", "arm", "v6")),
    ("linux", ("linux", *platform.host_arch())),
])
def test_parse(text: str, want: tuple[str, str, str]) -> None:
    assert platform.parse(text) == want


@pytest.mark.parametrize("text", ["", "linux//arm64", "a/b/c/d", "linux/arm 64", "/amd64"])
def test_parse_rejects_with_dockers_words(text: str) -> None:
    with pytest.raises(ValueError, match="unknown operating system or architecture"):
        platform.parse(text)


def test_same_knows_default_variants_and_aliases() -> None:
    assert platform.same(("linux", "arm64", ""), ("linux", "arm64", "v8"))
    assert platform.same(("linux", "x86_64", ""), ("", "amd64", ""))
    assert platform.same(("linux", "arm", ""), ("linux", "arm", "v7"))
    assert not platform.same(("linux", "arm", "v6"), ("linux", "arm", "v7"))
    assert not platform.same(("linux", "arm64", ""), ("linux", "amd64", ""))


def test_name() -> None:
    assert platform.name("linux", "arm64", "v8") == "linux/arm64/v8"
    assert platform.name("", "amd64") == "linux/amd64"
