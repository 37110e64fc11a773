"""A hijacked connection's client leaving (services/dockerapi/gone.py): a half-close (the
docker CLI's, right after its request when it sends no stdin) is not leaving; closing the
socket is, and it cancels the work (an attach waiting for a stopped container's run)."""

from __future__ import annotations

import asyncio
import socket

from services.dockerapi.gone import until_peer_closed


async def _attached(close: bool) -> bool:
    """Whether the work was cancelled within 2 s after the client half-closed or closed."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    _, writer = await asyncio.open_connection(sock=ours)
    cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.ensure_future(until_peer_closed(writer, work()))
    theirs.shutdown(socket.SHUT_WR)
    if close:
        theirs.close()
    try:
        await asyncio.wait_for(cancelled.wait(), 2)
    except TimeoutError:
        return False
    finally:
        task.cancel()
        writer.close()
        theirs.close()
    return True


def test_a_client_that_closes_cancels_the_work() -> None:
    assert asyncio.run(_attached(close=True))


def test_a_client_that_only_half_closes_keeps_it() -> None:
    assert not asyncio.run(_attached(close=False))
