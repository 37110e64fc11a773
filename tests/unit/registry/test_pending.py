"""resolver._Pending: what a blob stream hands on, cut into messages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.registry.resolver import _Pending
from tests.unit.fuzz.settings import FUZZ

SIZE = 64


@FUZZ
@given(st.lists(st.integers(0, 300), max_size=12), st.booleans())
def test_messages_are_the_bytes_in_order_and_at_most_size(lengths: list[int],
                                                          hashing: bool) -> None:
    pieces = [bytes([i % 256]) * n for i, n in enumerate(lengths)]
    least, keep = (SIZE, 1) if hashing else (SIZE // 4, 0)
    pending = _Pending(SIZE, least)
    out: list[bytes] = []
    fed = 0
    for piece in pieces:
        pending.add(piece)
        fed += len(piece)
        while (msg := pending.take(keep)) is not None:
            assert least <= len(msg) <= SIZE
            out.append(msg)
        if hashing and fed:
            assert pending.held >= 1  # the last bytes wait for the digest
    while (msg := pending.take(0, final=True)) is not None:
        assert 0 < len(msg) <= SIZE
        out.append(msg)
    assert b"".join(out) == b"".join(pieces)
    assert pending.held == 0


def test_a_piece_of_a_fitting_size_goes_on_without_a_copy() -> None:
    pending = _Pending(SIZE, SIZE // 4)
    piece = b"x" * 40
    pending.add(piece)
    assert pending.take(0) is piece
