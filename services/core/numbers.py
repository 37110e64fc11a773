"""Decimal numbers in user text, read without surprises.

``str.isdigit`` is true for "²" and "٣", which ``int`` then refuses or reads as another
digit, and ``int`` refuses strings of more than 4300 digits (ValueError): either would
reach a user as an internal error. Every check of a number the user typed uses this.
"""

from __future__ import annotations

_MAX_DIGITS = 20  # 2**64 has 20 digits: every limit we check fits


def uint(text: str) -> int | None:
    """The value of ``text`` if it is 1-20 ASCII decimal digits, else None."""
    if not 0 < len(text) <= _MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)
