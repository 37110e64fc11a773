"""Request bodies passed on to the gateway as they arrive: a build context, an image
archive (``docker load``), a root filesystem (``docker import``), a tar for ``docker cp``
into a container.

None of these has a size limit (dockerd has none either), so none is buffered: the body is
read from the connection (``Request.body_stream``) and sent on in messages of ``CHUNK``
bytes, one in flight, so a slow gateway slows the client down instead of filling memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.dockerapi.engine import BidiStream
from services.dockerapi.http import Request
from vocab.errors import MuelleError

CHUNK = 1 << 20  # body bytes per gRPC message


async def send_body(call: BidiStream, req: Request, message: Callable[[bytes], Any]) -> None:
    """Send the request's body as ``message(chunk)``s, then half-close the call. When the
    gateway ends the call early (a refused archive), sending stops quietly: the call's
    reply or its next read says why."""
    try:
        await _send(call, req, message)
    except MuelleError:
        return


async def _send(call: BidiStream, req: Request, message: Callable[[bytes], Any]) -> None:
    if req.body_stream is None:  # a buffered body (a path not streamed: tests, small bodies)
        for i in range(0, len(req.body), CHUNK):
            await call.send(message(req.body[i:i + CHUNK]))
    else:
        pending = bytearray()
        while data := await req.body_stream.read():
            pending += data
            if len(pending) >= CHUNK:
                await call.send(message(bytes(pending)))
                pending.clear()
        if pending:
            await call.send(message(bytes(pending)))
    await call.done_writing()
