"""Long answers that write nothing for a while (logs -f of a quiet container, events, wait)
must notice a client that hung up: otherwise the gateway stream behind each holds one of
its workers for good, and enough of them wedge the engine."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections.abc import Coroutine
from typing import Any

from services.dockerapi.http import Responder


async def while_connected(out: Responder, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` (which writes the body); a client that hangs up first cancels it (and
    with it the gateway call) and raises ConnectionResetError. Call after the head."""
    if not await _unless(work, out.client_gone()):
        raise ConnectionResetError


async def _unless(work: Coroutine[Any, Any, None], gone: Coroutine[Any, Any, None]) -> bool:
    """Run ``work`` until ``gone`` returns: False when it did first (``work`` cancelled),
    True when ``work`` ended (its exception raised). ``gone`` is ended before returning:
    the connection must have one reader at a time before it reads its next request."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(gone)
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return False
    task.result()
    return True


async def peer_closed(writer: asyncio.StreamWriter, every: float = 0.25) -> None:
    """Returns once the client closed a hijacked connection entirely: its unix socket
    polls HUP (or ERR). EOF cannot tell, the docker CLI half-closes its side at once when
    it sends no stdin; a TCP peer's close shows only as EOF too, so over TCP this waits
    for good (as dockerd's attach does) and the first failed write ends the stream."""
    sock = writer.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        await asyncio.Event().wait()
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLHUP | select.POLLERR)
    while not any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0)):
        await asyncio.sleep(every)


async def until_peer_closed(writer: asyncio.StreamWriter,
                            work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; a client that closes the hijacked connection first cancels it (and
    with it the gateway call: an attach waiting for a stopped container's next run must
    not hold a gateway worker for a client that left)."""
    await _unless(work, peer_closed(writer))
