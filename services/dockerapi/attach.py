"""Output streams of a container: ``GET /containers/{id}/logs`` (chunked) and
``POST /containers/{id}/attach`` (hijacked; stdin from the client, output to it).

Framing per Config.Tty (streams.py). The hijacked client may half-close at once (no -i):
output keeps flowing until the container's stdio ends, then the connection is closed,
which is how the client learns the stream is over (COMPAT.md §3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi.container_json import last_run_end
from services.dockerapi.engine import BidiStream, Gateway
from services.dockerapi.errors import bad_request
from services.dockerapi.gone import until_peer_closed, while_connected
from services.dockerapi.http import Hijacked, Request, Responder
from services.dockerapi.streams import encode, pump_stdin
from vocab.timefmt import now_rfc3339, parse_ns

# Container ID -> size setters of its live attach streams, for POST .../resize.
_RESIZERS: dict[str, list[Callable[[int, int], None]]] = {}


def resize_attached(cid: str, height: int, width: int) -> None:
    for setter in _RESIZERS.get(cid, []):
        setter(height, width)


def _tail(text: str) -> int | None:
    """Docker's tail: "all" (or negative) = everything -> None; else the number."""
    if text in ("", "all"):
        return None
    try:
        n = int(text)
    except ValueError:
        raise bad_request(f"invalid tail {text!r}: want a number or all") from None
    return None if n < 0 else n


def _time(text: str, name: str) -> int:
    try:
        return parse_ns(text)
    except ValueError:
        raise bad_request(f"invalid {name} {text!r}: want Unix seconds or RFC 3339") from None


class Streams:
    def __init__(self, gateway: Gateway,
                 detail: Callable[[str], Any]) -> None:
        self.gateway = gateway
        self.detail = detail  # async ref -> ContainerDetail (404 when unknown)

    async def logs(self, req: Request, out: Responder) -> None:
        ref = req.params["id"]
        stdout, stderr = req.flag("stdout"), req.flag("stderr")
        if not (stdout or stderr):
            raise bad_request("Bad parameters: you must choose at least one stream")
        follow = req.flag("follow")
        tail = _tail(req.arg("tail", "all"))
        since = req.arg("since")
        if since in ("", "0"):
            since = ""
        else:
            _time(since, "since")
        until = _time(req.arg("until"), "until") if req.arg("until") not in ("", "0") else 0
        tty = (await self.detail(ref)).config.tty
        if tail == 0:  # Docker: none of the old lines; the engine's 0 means all
            if not follow:
                await out.start_stream(200)
                await out.end()
                return
            since, tail = now_rfc3339(), None
        await out.start_stream(200)
        entries = self.gateway.stream("ContainerLogs", engine_pb2.ContainerLogsRequest(
            container=ref, follow=follow, tail=tail or 0, since=since,
            timestamps=req.flag("timestamps"), stdout=stdout, stderr=stderr))

        async def relay() -> None:
            async with contextlib.aclosing(entries):  # a client gone cancels the stream now
                async for entry in entries:
                    if until and entry.time and parse_ns(entry.time) > until:
                        break
                    await out.write(encode(entry.stream, bytes(entry.data), tty))

        await while_connected(out, relay())  # also while the container writes nothing
        await out.end()

    async def attach(self, req: Request, out: Responder) -> None:
        detail = await self.detail(req.params["id"])
        wanted = {"stdout": req.flag("stdout"), "stderr": req.flag("stderr")}
        use_stdin = req.flag("stdin") and detail.config.open_stdin
        if not (any(wanted.values()) or use_stdin):
            raise bad_request("at least one of stdin, stdout or stderr must be attached")
        start = engine_pb2.AttachContainerRequest(
            container=detail.id, logs=req.flag("logs"), stdin=use_stdin,
            after_finished_at=last_run_end(detail))
        if not req.flag("stream"):
            await self._replay(detail, wanted, await out.hijack(req.upgrade))
            return
        pipe = await out.hijack(req.upgrade)
        events: Any  # an async generator either way: closed in the finally
        pump: asyncio.Future[None] | None = None
        call: BidiStream | None = None
        if use_stdin:
            call = self.gateway.bidi("AttachContainerStream")
            await call.send(engine_pb2.AttachContainerInput(start=start))
            pump = asyncio.ensure_future(pump_stdin(pipe, call, engine_pb2.AttachContainerInput))
            events = call.__aiter__()
        else:
            events = self.gateway.stream("AttachContainer", start)
        setter = _resize_setter(call)
        _RESIZERS.setdefault(detail.id, []).append(setter)
        async def relay() -> None:
            async for event in events:
                if event.WhichOneof("event") != "output":
                    break  # the exit status: Docker's attach ends with the output
                if wanted.get(event.output.stream):
                    await pipe.write(encode(event.output.stream, bytes(event.output.data),
                                            detail.config.tty))

        try:
            await until_peer_closed(pipe.writer, relay())
        finally:
            _RESIZERS[detail.id].remove(setter)
            if not _RESIZERS[detail.id]:
                del _RESIZERS[detail.id]
            if pump is not None:
                pump.cancel()
            if call is not None:
                call.cancel()
            await events.aclose()

    async def _replay(self, detail: engine_pb2.ContainerDetail, wanted: dict[str, bool],
                      pipe: Hijacked) -> None:
        """attach with logs and without stream: what the container wrote, then the end."""
        entries = self.gateway.stream("ContainerLogs", engine_pb2.ContainerLogsRequest(
            container=detail.id, stdout=wanted["stdout"], stderr=wanted["stderr"]))
        async for entry in entries:
            await pipe.write(encode(entry.stream, bytes(entry.data), detail.config.tty))


def _resize_setter(call: BidiStream | None) -> Callable[[int, int], None]:
    def setter(height: int, width: int) -> None:
        if call is not None and height > 0 and width > 0:
            size = types_pb2.ConsoleSize(rows=height, cols=width)
            asyncio.ensure_future(call.send(engine_pb2.AttachContainerInput(resize=size)))

    return setter

