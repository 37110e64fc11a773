"""Tar streams and commits: ``GET /containers/{id}/export``, ``GET /images/{name}/get`` and
``GET /images/get?names=`` (docker save), ``POST /commit``.

Archives come from the gateway as chunk streams and go out as chunked HTTP, one chunk in
flight. Loading (``POST /images/load``) and ``/containers/{id}/archive`` are not here yet:
the first needs request bodies streamed past the JSON size limit, the second an engine.v1
RPC.
"""

from __future__ import annotations

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi.engine import Gateway
from services.dockerapi.errors import bad_request
from services.dockerapi.http import Request, Responder

TAR = "application/x-tar"


class Archives:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def _relay(self, method: str, request: object, out: Responder) -> None:
        """The head only once the first chunk came: an error before it is a status."""
        started = False
        async for chunk in self.gateway.stream(method, request):
            if not started:
                await out.start_stream(200, TAR)
                started = True
            await out.write(bytes(chunk.data))
        if not started:
            await out.start_stream(200, TAR)
        await out.end()

    async def export(self, req: Request, out: Responder) -> None:
        await self._relay("ExportContainer", engine_pb2.ExportContainerRequest(
            container=req.params["id"]), out)

    async def save_one(self, req: Request, out: Responder) -> None:
        await self._relay("SaveImages", types_pb2.SaveImagesRequest(
            references=[req.params["name"]]), out)

    async def save(self, req: Request, out: Responder) -> None:
        names = req.query.get("names") or []
        if not names:
            raise bad_request("names is required")
        await self._relay("SaveImages", types_pb2.SaveImagesRequest(references=names), out)

    async def commit(self, req: Request, out: Responder) -> None:
        container = req.arg("container")
        if not container:
            raise bad_request("container is required")
        config = req.json({})
        if config:  # docker commit --change
            raise bad_request("commit with a changed config (--change) is not supported by "
                              "muelle yet")
        repo, tag = req.arg("repo"), req.arg("tag")
        reference = f"{repo}:{tag}" if repo and tag else repo
        reply = await self.gateway.call("CommitContainer", engine_pb2.CommitContainerRequest(
            container=container, reference=reference, author=req.arg("author"),
            comment=req.arg("comment"), no_pause=not req.flag("pause", default=True)))
        await out.json(201, {"Id": reply.id})
