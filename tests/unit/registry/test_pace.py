"""The minimum pace of a blob download (services/registry/pace.py), on a fake clock."""

from __future__ import annotations

import pytest

from services.registry.pace import MinimumPace
from vocab.errors import Unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_trickle_fails_naming_blob_and_registry() -> None:
    clock = Clock()
    pace = MinimumPace(1000, 10, "reg.example:5000", "sha256:abc", clock)
    for _ in range(9):  # a byte a second: fine until the window is over
        clock.now += 1
        pace.received(1)
    clock.now += 1
    with pytest.raises(Unavailable, match="registry reg.example:5000 is too slow sending "
                                          "blob sha256:abc: 10 bytes in 10 s"):
        pace.received(1)


def test_enough_bytes_per_window_goes_on_for_ever() -> None:
    clock = Clock()
    pace = MinimumPace(1000, 10, "r", "sha256:abc", clock)
    for _ in range(100):
        clock.now += 5
        pace.received(600)  # 1200 per window


def test_a_byte_after_a_long_silence_fails() -> None:
    clock = Clock()
    pace = MinimumPace(1000, 10, "r", "sha256:abc", clock)
    clock.now += 50
    with pytest.raises(Unavailable, match="1 bytes in 50 s"):
        pace.received(1)


def test_zero_minimum_is_off() -> None:
    clock = Clock()
    pace = MinimumPace(0, 10, "r", "sha256:abc", clock)
    clock.now += 1000
    pace.received(1)
