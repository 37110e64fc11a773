"""Tar streams and commits: ``GET /containers/{id}/export``, ``GET /images/{name}/get`` and
``GET /images/get?names=`` (docker save), ``POST /commit``, and ``GET``/``HEAD
/containers/{id}/archive`` (docker cp from a container; engine.v1 StatContainerPath and
CopyFromContainer: the image store reads the container's layers, symlinks resolved
inside its root; the shim answers a path through the container's mounts).

Archives come from the gateway as chunk streams and go out as chunked HTTP, one chunk in
flight. ``PUT /containers/{id}/archive`` (docker cp into a container) streams the other
way (uploads.py); loading and importing images are in loads.py.
"""

from __future__ import annotations

import base64
import json
import stat

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi.engine import Gateway
from services.dockerapi.errors import bad_request
from services.dockerapi.http import Request, Responder
from services.dockerapi.uploads import send_body

TAR = "application/x-tar"
STAT_HEADER = "X-Docker-Container-Path-Stat"


# Go's os.FileMode bits, which the docker CLI reads from X-Docker-Container-Path-Stat.
_GO_TYPES = ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISFIFO, 1 << 25),
             (stat.S_ISSOCK, 1 << 24), (stat.S_ISCHR, (1 << 26) | (1 << 21)),
             (stat.S_ISBLK, 1 << 26))


def go_file_mode(mode: int) -> int:
    out = mode & 0o777
    for test, bit in _GO_TYPES:
        if test(mode):
            out |= bit
    for unix, go in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if mode & unix:
            out |= go
    return out


def path_stat_header(st: types_pb2.ContainerPathStat) -> str:
    doc = {"name": st.name, "size": st.size, "mode": go_file_mode(st.mode),
           "mtime": st.mtime, "linkTarget": st.link_target}
    return base64.b64encode(json.dumps(doc).encode()).decode()


class Archives:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def _relay(self, method: str, request: object, out: Responder,
                     headers: list[tuple[str, str]] | None = None) -> None:
        """The head only once the first chunk came: an error before it is a status."""
        started = False
        async for chunk in self.gateway.stream(method, request):
            if not started:
                await out.start_stream(200, TAR, headers)
                started = True
            await out.write(bytes(chunk.data))
        if not started:
            await out.start_stream(200, TAR, headers)
        await out.end()

    async def _path_stat(self, req: Request) -> tuple[str, str]:
        path = req.arg("path")
        if not path:
            raise bad_request("path is required")
        st = await self.gateway.call("StatContainerPath", engine_pb2.ContainerPathRequest(
            container=req.params["id"], path=path))
        return path, path_stat_header(st)

    async def head_path(self, req: Request, out: Responder) -> None:
        """``HEAD /containers/{id}/archive?path=``: what is there, in the stat header."""
        _, header = await self._path_stat(req)
        await out.body(200, b"", TAR, headers=[(STAT_HEADER, header)])

    async def get_path(self, req: Request, out: Responder) -> None:
        """``GET /containers/{id}/archive?path=`` (docker cp from a container)."""
        path, header = await self._path_stat(req)
        await self._relay("CopyFromContainer", engine_pb2.ContainerPathRequest(
            container=req.params["id"], path=path), out, [(STAT_HEADER, header)])

    async def put_path(self, req: Request, out: Responder) -> None:
        """``PUT /containers/{id}/archive?path=`` (docker cp into a container): the body,
        a tar of any size, passed on as it arrives and extracted into that directory by the
        shim (engine.v1 CopyToContainer -> shim.v1 CopyTo)."""
        path = req.arg("path")
        if not path:
            raise bad_request("path is required")
        call = self.gateway.bidi("CopyToContainer")
        try:
            await call.send(engine_pb2.CopyToContainerInput(
                start=engine_pb2.CopyToContainerStart(
                    container=req.params["id"], path=path, copy_uid_gid=req.flag("copyUIDGID"),
                    no_overwrite_dir_non_dir=req.flag("noOverwriteDirNonDir"))))
            await send_body(call, req,
                                lambda data: engine_pb2.CopyToContainerInput(data=data))
            await call.result()
        finally:
            call.cancel()  # after the reply a no-op; before it (the client left) an abort
        await out.body(200, b"", "text/plain; charset=utf-8")

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
        if req.json({}):  # a config in the body: docker-py's commit(conf=...)
            raise bad_request("commit with a config in the body is not supported by muelle: "
                              "change it with changes (--change)")
        repo, tag = req.arg("repo"), req.arg("tag")
        reference = f"{repo}:{tag}" if repo and tag else repo
        reply = await self.gateway.call("CommitContainer", engine_pb2.CommitContainerRequest(
            container=container, reference=reference, author=req.arg("author"),
            comment=req.arg("comment"), no_pause=not req.flag("pause", default=True),
            changes=[c for c in req.query.get("changes", []) if c]))
        await out.json(201, {"Id": reply.id})
