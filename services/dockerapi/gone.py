"""Long answers that write nothing for a while (logs -f of a quiet container, events, wait)
must notice a client that hung up: otherwise the gateway stream behind each holds one of
its workers for good, and enough of them wedge the engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from services.dockerapi.http import Responder


async def while_connected(out: Responder, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` (which writes the body); a client that hangs up first cancels it (and
    with it the gateway call) and raises ConnectionResetError. Call after the head."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(out.client_gone())
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Done before the connection reads its next request: one reader at a time.
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise ConnectionResetError
    task.result()
