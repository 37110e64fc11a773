"""Images from tars the client sends: ``POST /images/load`` (docker load, docker-py
``images.load``: an archive of ``docker save``, Docker's or OCI's layout) and ``POST
/images/create?fromSrc=-`` (docker import: a root filesystem tar).

The body goes to the gateway as it arrives (uploads.py; engine.v1 LoadImages and
ImportImage, client streams). Both answer dockerd's way: status 200 and JSON lines, an
error that comes after the body was accepted is in-band (``errorDetail``), which the docker
CLI prints and exits 1 on, and docker-py raises as ImageLoadError/APIError. A client that
hangs up mid-body cancels the call: the image store records nothing of a partial archive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from muelle.types.v1 import types_pb2

from services.dockerapi.engine import Gateway
from services.dockerapi.errors import bad_request
from services.dockerapi.http import Request, Responder
from services.dockerapi.images import familiar
from services.dockerapi.pull import line
from services.dockerapi.uploads import send_body
from vocab.errors import MuelleError


async def _in_band(out: Responder, objects: list[dict[str, Any]]) -> None:
    await out.start_stream(200, "application/json")
    for obj in objects:
        await out.write(line(obj))
    await out.end()


def _error(exc: MuelleError) -> dict[str, Any]:
    return {"errorDetail": {"message": exc.message}, "error": exc.message}


async def _upload(gateway: Gateway, method: str, req: Request, out: Responder,
                  first: Any | None, message: Callable[[bytes], Any],
                  in_band: bool = True) -> Any | None:
    """``first`` (if any), then the body as ``message`` chunks, to the client-streaming
    ``method``; its reply, or None once a refusal went out in-band. ``in_band`` false: a
    refusal is raised (an HTTP error status), as dockerd answers an import that failed
    before it wrote any output. A client that leaves mid-body cancels the call (after the
    reply the cancel is a no-op)."""
    call = gateway.bidi(method)
    try:
        if first is not None:
            await call.send(first)
        await send_body(call, req, message)
        try:
            return await call.result()
        except MuelleError as exc:
            if not in_band:
                raise
            await _in_band(out, [_error(exc)])
            return None
    finally:
        call.cancel()


async def load(gateway: Gateway, req: Request, out: Responder) -> None:
    """``docker load``: "Loaded image: NAME" per name (familiar form, as dockerd prints
    them), "Loaded image ID: sha256:..." for an image the archive does not name."""
    reply = await _upload(gateway, "LoadImages", req, out, None,
                          lambda data: types_pb2.ArchiveChunk(data=data))
    if reply is None:
        return
    lines = []
    for image in reply.images:
        texts = ([f"Loaded image: {familiar(n)}" for n in image.names]
                 or [f"Loaded image ID: {image.id}"])
        lines += [{"stream": text + "\n"} for text in texts]
    await _in_band(out, lines)


def import_reference(req: Request) -> str:
    """``repo`` and ``tag`` of an import as one reference ("" leaves it untagged)."""
    repo, tag = req.arg("repo"), req.arg("tag")
    if not repo:
        if tag:
            raise bad_request("tag given without repo")
        return ""
    return f"{repo}:{tag}" if tag else repo


async def import_image(gateway: Gateway, req: Request, out: Responder) -> None:
    """``docker import FILE|- [REPO[:TAG]]``: the image ID as a status line. Importing
    from a URL is refused (no request of muelle's reaches other hosts for a client)."""
    if req.arg("fromSrc") != "-":
        raise bad_request("import from a URL is not supported by muelle: send the tar as "
                          "the body (fromSrc=-)")
    first = types_pb2.ImportRequest(reference=import_reference(req),
                                    message=req.arg("message"),
                                    changes=[c for c in req.query.get("changes", []) if c])
    reply = await _upload(gateway, "ImportImage", req, out, first,
                          lambda data: types_pb2.ImportRequest(data=data), in_band=False)
    if reply is None:
        return
    await _in_band(out, [{"status": reply.id}])
