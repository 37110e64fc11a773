"""The budget of long calls: refused past the limit with a message, places come back."""

from __future__ import annotations

import pytest

from services.core.server import MAX_WORKERS
from services.gateway.longcalls import LIMIT, RESERVED, LongCalls
from vocab.errors import ResourceExhausted


def test_the_budget_keeps_workers_for_short_calls() -> None:
    assert LIMIT == MAX_WORKERS - RESERVED and RESERVED > 0


def test_past_the_limit_a_long_call_is_refused_and_ended_ones_free_their_place() -> None:
    calls = LongCalls(limit=2)
    refused = pytest.raises(ResourceExhausted, match=r"too many long-running calls .*2.*wait")
    with calls.slot("logs -f"), calls.slot("attach"), refused, calls.slot("wait"):
        pass
    assert calls.active == 0
    with calls.slot("wait"):
        assert calls.active == 1
