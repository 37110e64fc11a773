"""core/heap.py: glibc's thresholds set, and the heap trimmed when the last transfer ends."""

from __future__ import annotations

import pytest

from services.core import heap


def test_tune_sets_the_thresholds_on_glibc() -> None:
    if heap._LIBC is None:
        pytest.skip("not glibc: tune() does nothing")
    assert heap.tune()


def test_only_the_last_transfer_to_end_trims(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(heap, "trim", lambda: trims.append(1))
    busy = heap.Busy()
    with busy:
        with busy:
            pass
        assert trims == []  # one transfer still runs
    assert trims == [1]
    with pytest.raises(RuntimeError), busy:
        raise RuntimeError("a failed transfer")
    assert trims == [1, 1]
