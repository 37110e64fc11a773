"""Attached stdin: detach keys and EOF."""

from __future__ import annotations

import os

import pytest

from clients.cli.attach import Stdin, parse_detach_keys
from clients.cli.units import UsageError


def chunks(*writes: bytes, keys: bytes = b"\x10\x11",
           ) -> tuple[list[bytes | tuple[int, int] | None], bool]:
    r, w = os.pipe()
    for data in writes:
        os.write(w, data)
    os.close(w)
    stdin = Stdin(keys, fd=r)
    try:
        return list(stdin), stdin.detached.is_set()
    finally:
        os.close(r)


def test_eof_is_a_none_and_detach_keys_end_without_one() -> None:
    assert chunks(b"hi\n") == ([b"hi\n", None], False)
    assert chunks(b"ab\x10\x11cd") == ([b"ab"], True)
    assert chunks(b"\x10x\x10") == ([b"\x10x", b"\x10", None], False)


def test_parse_detach_keys() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@,ctrl-_") == b"a\x00\x1f"
    for bad in ("", "ctrl-", "ctrl-1", "abc"):
        with pytest.raises(UsageError):
            parse_detach_keys(bad)
