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
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(peer_closed(writer))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return
    task.result()
