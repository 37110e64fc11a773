"""A budget for the calls that hold a gateway worker as long as a client likes (logs -f,
attach, wait, events, exec): the gRPC server has a fixed pool of worker threads, and a
pool full of such calls queues every other call behind them, for good: `docker ps`
would hang because 64 `docker logs -f` are open. Past the budget a long call is refused
at once with RESOURCE_EXHAUSTED, naming the limit; the rest of the pool stays for the
short calls.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from services.core.server import MAX_WORKERS
from vocab.errors import ResourceExhausted

# Workers kept for short calls (and the long calls' own short calls: a wait's inspect).
RESERVED = 64
LIMIT = MAX_WORKERS - RESERVED


class LongCalls:
    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._guard = threading.Lock()
        self.active = 0

    @contextlib.contextmanager
    def slot(self, what: str) -> Iterator[None]:
        with self._guard:
            if self.active >= self.limit:
                raise ResourceExhausted(
                    f"too many long-running calls in progress ({self.limit}: logs -f, attach, "
                    f"wait, events, exec); {what} refused, try again once some end")
            self.active += 1
        try:
            yield
        finally:
            with self._guard:
                self.active -= 1
