"""vocab/timefmt.py: the fast path of parse_ns reads what the regex path reads."""

from __future__ import annotations

import random

import pytest

from vocab import timefmt

TRICKY = [
    "2026-12-06T19:00:00Z", "2026-12-06T19:00:00.123456789Z", "2026-12-06T19:00:00.5z",
    "2024-02-29T23:59:59.000000001Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.9Z",
    "2026-12-06 19:00:00Z", "2026-12-06t19:00:00Z", "9999-12-31T23:59:59.999999999Z",
    # not valid, or not the fast path's form: the slow path decides
    "2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-12-32T00:00:00Z",
    "2026-12-06T24:00:00Z", "2026-12-06T23:60:00Z", "2026-12-06T23:59:60Z",
    "2026-12-06T19:00:00.Z", "2026-12-06T19:00:00.1234567890Z", "2026-12-06T19:00:00,5Z",
    "2026-12-06T19:00:00+02:00", "2026-12-06T19:00:00.25-01:30", " 2026-12-06T19:00:00Z ",
    "2026-W49-7T19:00:00Z", "2026-12-0６T19:00:00Z", "2026-12-06T1９:00:00Z",
    "20261206T190000Z", "2026-12-06T19:00Z", "1700000000.5", "", "yesterday",
    "2026-12-06T19:00:00.-5Z", "+026-12-06T19:00:00Z",
]


def _slow(text: str) -> int | str:
    """parse_ns without its fast path (its cache bypassed)."""
    original = timefmt._utc_ns
    timefmt._utc_ns = lambda _text: None  # type: ignore[assignment]
    try:
        return timefmt.parse_ns.__wrapped__(text)
    except ValueError:
        return "ValueError"
    finally:
        timefmt._utc_ns = original  # type: ignore[assignment]


def _fast(text: str) -> int | str:
    try:
        return timefmt.parse_ns.__wrapped__(text)
    except ValueError:
        return "ValueError"


@pytest.mark.parametrize("text", TRICKY)
def test_fast_path_agrees_with_the_regex_path(text: str) -> None:
    assert _fast(text) == _slow(text)


def test_fast_path_agrees_on_random_times() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        ns = rng.randrange(0, 300 * 365 * 86400 * 10**9)
        text = timefmt.rfc3339_nano(ns)
        if rng.random() < 0.5:
            text = text[:20 + rng.randrange(0, 10)].rstrip(".") + "Z"
        assert timefmt._utc_ns(text) == _slow(text)
    assert timefmt._utc_ns(timefmt.rfc3339_nano(1_733_500_000_123_456_789)) \
        == 1_733_500_000_123_456_789
