"""``POST /images/create?fromImage=..&tag=..``: a pull, as Docker's JSON-lines progress.

engine.v1 PullProgress -> the objects `docker pull` renders: ``{"status":"Pulling fs
layer","progressDetail":{},"id":"<12 hex>"}``, ``"Downloading"`` with current/total and a
bar, ``"Digest: ..."``, ``"Status: Downloaded newer image for ..."``. Lines end in
``\\r\\n`` (COMPAT.md §5). An error before the first line is an ordinary error response;
after it, it comes in-band with status 200 (``errorDetail``), as dockerd does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi import registryauth
from services.dockerapi.engine import Gateway
from services.dockerapi.errors import bad_request
from services.dockerapi.http import Request, Responder
from vocab.errors import MuelleError

BAR = 50


def reference(from_image: str, tag: str) -> str:
    if not from_image:
        raise bad_request("fromImage (a pull) or fromSrc (an import) is required")
    if not tag:
        return from_image
    return f"{from_image}@{tag}" if tag.startswith("sha256:") else f"{from_image}:{tag}"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def progress_bar(current: int, total: int) -> str:
    if total <= 0:
        return _size(current)
    filled = min(BAR, current * BAR // total)
    arrow = ">" if filled < BAR else "="
    bar = ("=" * max(filled - 1, 0) + arrow).ljust(BAR)
    return f"[{bar}] {_size(current)}/{_size(total)}"


def line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\r\n"


def progress_line(event: types_pb2.PullProgress, name: str, tag: str) -> dict[str, Any] | None:
    kind = event.WhichOneof("event")
    if kind == "status":
        if event.status.startswith("Pulling from "):
            return {"status": event.status, "id": tag or "latest"}
        return {"status": event.status}
    if kind == "layer":
        layer = event.layer
        entry: dict[str, Any] = {"status": layer.phase, "progressDetail": {},
                                 "id": layer.digest.split(":")[-1][:12]}
        if layer.phase in ("Downloading", "Extracting", "Pushing"):
            entry["progressDetail"] = {"current": layer.current, "total": layer.total}
            entry["progress"] = progress_bar(layer.current, layer.total)
        elif layer.phase == "Waiting" and layer.current == 0:
            entry["status"] = "Pulling fs layer"
        return entry
    return None


async def relay(events: AsyncIterator[Any], out: Responder,
                lines: Callable[[Any], list[dict[str, Any]]]) -> None:
    """JSON lines of a progress stream: ``lines(event)`` for each event. The head goes
    with the first event, so an error before it is an ordinary error response; an error
    after it comes in-band (``errorDetail``, status 200), as dockerd does."""
    started = False
    try:
        async for event in events:
            if not started:
                await out.start_stream(200, "application/json")
                started = True
            for entry in lines(event):
                await out.write(line(entry))
    except MuelleError as exc:
        if not started:
            raise
        await out.write(line({"errorDetail": {"message": exc.message}, "error": exc.message}))
    if not started:
        await out.start_stream(200, "application/json")
    await out.end()


async def pull(gateway: Gateway, req: Request, out: Responder) -> None:
    from_image, tag = req.arg("fromImage"), req.arg("tag")
    ref = reference(from_image, tag)
    pull_req = types_pb2.PullRequest(reference=ref,
                                     credentials=registryauth.from_request(req.headers))
    platform = req.arg("platform")
    if platform:
        os_name, _, rest = platform.partition("/")
        arch, _, variant = rest.partition("/")
        pull_req.platform.CopyFrom(types_pb2.Platform(os=os_name, architecture=arch,
                                                      variant=variant))
    shown: set[str] = set()  # "Digest", "Status": the engine may send them as status lines

    def lines(event: types_pb2.PullProgress) -> list[dict[str, Any]]:
        if event.WhichOneof("event") != "result":
            entry = progress_line(event, from_image, tag)
            if entry is None:
                return []
            shown.add(str(entry.get("status", "")).partition(":")[0])
            return [entry]
        result, out_lines = event.result, []
        if "Digest" not in shown and result.digest:
            out_lines.append({"status": f"Digest: {result.digest}"})
        if "Status" not in shown:
            verb = "Image is up to date" if result.up_to_date else "Downloaded newer image"
            out_lines.append({"status": f"Status: {verb} for {ref}"})
        return out_lines

    await relay(gateway.stream("PullImage", pull_req), out, lines)


async def push(gateway: Gateway, req: Request, out: Responder) -> None:
    """``POST /images/{name}/push?tag=``: the same JSON lines (the engine's first is "The
    push refers to repository"). X-Registry-Auth's credentials go with this push only;
    without them the engine uses its stored logins."""
    name, tag = req.params["name"], req.arg("tag")
    ref = f"{name}:{tag}" if tag else name
    push_req = engine_pb2.PushImageRequest(
        reference=ref, credentials=registryauth.from_request(req.headers))

    def lines(event: types_pb2.PullProgress) -> list[dict[str, Any]]:
        entry = progress_line(event, name, tag)
        return [entry] if entry is not None else []

    await relay(gateway.stream("PushImage", push_req), out, lines)
