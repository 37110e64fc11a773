"""core/heap.py: glibc's thresholds set, and the heap trimmed when the last transfer ends."""

from __future__ import annotations

import threading

import pytest

from services.core import heap


def test_tune_sets_the_thresholds_on_glibc() -> None:
    if heap._LIBC is None:
        pytest.skip("not glibc: tune() does nothing")
    assert heap.tune()


def test_only_the_last_transfer_to_end_trims(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    trimmed = threading.Semaphore(0)

    def trim() -> None:
        trims.append(1)
        trimmed.release()

    monkeypatch.setattr(heap, "trim", trim)
    busy = heap.Busy()
    with busy:
        with busy:
            pass
        assert trims == []  # one transfer still runs
    assert trimmed.acquire(timeout=10)  # on its own thread
    assert trims == [1]
    with pytest.raises(RuntimeError), busy:
        raise RuntimeError("a failed transfer")
    assert trimmed.acquire(timeout=10)
    assert trims == [1, 1]
