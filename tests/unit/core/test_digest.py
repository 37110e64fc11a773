from __future__ import annotations

import hashlib

import pytest

from vocab import digest
from vocab.errors import InvalidArgument


def test_chain_id_follows_the_image_spec() -> None:
    a = "sha256:" + "a" * 64
    b = "sha256:" + "b" * 64
    assert digest.chain_id([a]) == a
    expected = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert digest.chain_id([a, b]) == expected


@pytest.mark.parametrize("bad", ["sha256:abc", "md5:" + "a" * 32, "sha256:" + "A" * 64,
                                 "nocolon", "sha256:" + "g" * 64])
def test_invalid_digests(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        digest.validate(bad)


def test_of_bytes() -> None:
    assert digest.of_bytes(b"{}") == "sha256:" + hashlib.sha256(b"{}").hexdigest()
