"""Container endpoints: create, start, wait, stop, kill, restart, remove, list, inspect.

Each turns Docker's request into one or two engine.v1 calls; the output streams (attach,
logs) live in attach.py, exec in execs.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from muelle.engine.v1 import engine_pb2

from services.dockerapi import container_json, filters
from services.dockerapi.attach import resize_attached
from services.dockerapi.create import UPDATABLE as _UPDATABLE
from services.dockerapi.create import create_request, restart_text, update_request
from services.dockerapi.engine import Gateway
from services.dockerapi.errors import ApiError, bad_request, not_modified
from services.dockerapi.gone import while_connected
from services.dockerapi.http import Request, Responder
from vocab.errors import MuelleError, NotFound

KILL_WAIT = 10.0  # s a kill with SIGKILL waits for the exit, as dockerd's
_LIST_FILTERS = ("label", "name", "id", "status", "ancestor", "network", "exited", "health")
_HEALTH_FILTER = ("starting", "healthy", "unhealthy", "none")


class Containers:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def detail(self, ref: str) -> engine_pb2.ContainerDetail:
        detail: engine_pb2.ContainerDetail = await self.gateway.call(
            "InspectContainer", engine_pb2.InspectContainerRequest(container=ref))
        return detail

    async def create(self, req: Request, out: Responder) -> None:
        create = create_request(req.json(), req.arg("name"))
        reply = await self.gateway.call("CreateContainer", create)
        await out.json(201, {"Id": reply.id, "Warnings": list(reply.warnings)})

    async def start(self, req: Request, out: Responder) -> None:
        ref = req.params["id"]
        if (await self.detail(ref)).state.running:
            raise not_modified()
        await self.gateway.call("StartContainer", engine_pb2.StartContainerRequest(
            container=ref))
        await out.empty()

    async def wait(self, req: Request, out: Responder) -> None:
        """The head at once, the body at the exit (COMPAT.md §2: docker run starts the
        container only once it has the head)."""
        ref = req.params["id"]
        condition = req.arg("condition")
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise bad_request(f"invalid condition: {condition!r}")
        detail = await self.detail(ref)  # 404 before the head
        call = asyncio.ensure_future(self.gateway.call(
            "WaitContainer", engine_pb2.WaitContainerRequest(
                container=ref, condition=condition,
                after_finished_at=container_json.last_run_end(detail))))
        await out.start_stream(200, "application/json")

        async def answer() -> None:
            try:
                reply = await call
                body: dict[str, Any] = {
                    "StatusCode": reply.exit_code,
                    "Error": {"Message": reply.error} if reply.error else None}
            except NotFound as exc:  # removed by someone else meanwhile
                body = {"StatusCode": -1, "Error": {"Message": exc.message}}
            await out.write(json.dumps(body).encode() + b"\n")

        # The client hangs up a run -d's wait after start: that frees the gateway's worker.
        try:
            await while_connected(out, answer())
        finally:
            call.cancel()  # done already, or nobody waits for it any more
        await out.end()

    async def stop(self, req: Request, out: Responder) -> None:
        ref = req.params["id"]
        if not (await self.detail(ref)).state.running:
            raise not_modified()
        stop = engine_pb2.StopContainerRequest(container=ref)
        timeout = req.integer("t")
        if timeout is not None:
            stop.timeout = timeout
        await self.gateway.call("StopContainer", stop)
        await out.empty()

    async def restart(self, req: Request, out: Responder) -> None:
        restart = engine_pb2.RestartContainerRequest(container=req.params["id"])
        timeout = req.integer("t")
        if timeout is not None:
            restart.timeout = timeout
        await self.gateway.call("RestartContainer", restart)
        await out.empty()

    async def changes(self, req: Request, out: Responder) -> None:
        reply = await self.gateway.call("ContainerChanges", engine_pb2.ContainerChangesRequest(
            container=req.params["id"]))
        # dockerd answers null, not [], for a container that changed nothing
        await out.json(200, [{"Path": c.path, "Kind": c.kind} for c in reply.changes] or None)

    async def update(self, req: Request, out: Responder) -> None:
        """``POST /containers/{id}/update`` (docker update): resource limits, applied to
        the live cgroup and kept for later starts, and the restart policy; what engine.v1
        cannot change is refused by name (400)."""
        body = req.json({})
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        asked = [k for k, v in body.items() if k not in _UPDATABLE and v not in
                 (None, 0, "", [], {}, False)]
        if asked:
            raise ApiError(400, f"updating {', '.join(sorted(asked))} is not supported by "
                                "muelle yet")
        update = update_request(body)
        update.container = req.params["id"]
        policy = body.get("RestartPolicy")
        if isinstance(policy, dict) and policy.get("Name") is not None:
            update.restart_policy = restart_text(policy) or "no"
        if update != engine_pb2.UpdateContainerRequest(container=update.container):
            await self.gateway.call("UpdateContainer", update)
        else:
            await self.detail(req.params["id"])  # 404 for a missing container
        await out.json(200, {"Warnings": None})

    async def rename(self, req: Request, out: Responder) -> None:
        if not req.arg("name"):
            raise bad_request("name is required")  # dockerd's 400 too
        await self.gateway.call("RenameContainer", engine_pb2.RenameContainerRequest(
            container=req.params["id"], name=req.arg("name")))
        await out.empty()

    async def kill(self, req: Request, out: Responder) -> None:
        signal = req.arg("signal")
        await self.gateway.call("KillContainer", engine_pb2.KillContainerRequest(
            container=req.params["id"], signal=signal))
        if signal.upper().removeprefix("SIG") in ("", "KILL", "9"):
            # dockerd: "no signal, or SIGKILL: regular Kill (SIGKILL + wait)" - an inspect
            # right after `docker kill` sees the container exited
            with contextlib.suppress(MuelleError, asyncio.TimeoutError):
                await asyncio.wait_for(self.gateway.call(
                    "WaitContainer", engine_pb2.WaitContainerRequest(
                        container=req.params["id"], condition="not-running")), KILL_WAIT)
        await out.empty()

    async def remove(self, req: Request, out: Responder) -> None:
        if req.flag("link"):
            raise bad_request("links are not supported by muelle")
        await self.gateway.call("RemoveContainer", engine_pb2.RemoveContainerRequest(
            container=req.params["id"], force=req.flag("force"),
            remove_volumes=req.flag("v")))
        await out.empty()

    async def pause(self, req: Request, out: Responder) -> None:
        await self.gateway.call("PauseContainer", engine_pb2.PauseContainerRequest(
            container=req.params["id"]))
        await out.empty()

    async def unpause(self, req: Request, out: Responder) -> None:
        await self.gateway.call("UnpauseContainer", engine_pb2.UnpauseContainerRequest(
            container=req.params["id"]))
        await out.empty()

    async def list(self, req: Request, out: Responder) -> None:
        wanted = filters.parse(req.arg("filters"), _LIST_FILTERS)
        for value in wanted.get("health", []):
            if value not in _HEALTH_FILTER:  # dockerd's words
                raise bad_request(f"Unrecognised filter value for health: {value}")
        show_all = req.flag("all") or bool(wanted.get("status") or wanted.get("exited"))
        reply = await self.gateway.call("ListContainers",
                                        engine_pb2.ListContainersRequest(all=show_all))
        entries = [container_json.summary(c) for c in reply.containers
                   if _matches(c, wanted)]
        limit = req.integer("limit", -1) or -1
        if limit > 0:
            entries = entries[:limit]
        if req.flag("size") and entries:
            await self._add_sizes(entries)
        await out.json(200, entries)

    async def _add_sizes(self, entries: Sequence[dict[str, Any]]) -> None:
        """``size=1`` (docker ps -s): SizeRw, the writable layer's bytes, and SizeRootFs,
        those plus the image's, from one engine.v1 SystemDf (as dockerd, a walk of every
        listed container's layer: this is what makes ``-s`` slow on both)."""
        du = await self.gateway.call("SystemDf", engine_pb2.SystemDfRequest())
        written = {c.id: c.size for c in du.containers}
        images = {i.id: i.size for i in du.images}
        for entry in entries:
            rw = written.get(entry["Id"], 0)
            entry["SizeRw"] = rw
            entry["SizeRootFs"] = rw + images.get(entry["ImageID"], 0)

    async def prune(self, req: Request, out: Responder) -> None:
        wanted = filters.parse(req.arg("filters"), ("label", "until"))
        if "until" in wanted:
            raise ApiError(400, "prune with an until filter is not supported by muelle yet")
        reply = await self.gateway.call("ListContainers",
                                        engine_pb2.ListContainersRequest(all=True))
        deleted = []
        for c in reply.containers:
            if c.state in ("exited", "created") and _matches(c, wanted):
                await self.gateway.call("RemoveContainer",
                                        engine_pb2.RemoveContainerRequest(container=c.id))
                deleted.append(c.id)
        await out.json(200, {"ContainersDeleted": deleted or None, "SpaceReclaimed": 0})

    async def inspect(self, req: Request, out: Responder) -> None:
        detail = await self.detail(req.params["id"])
        image = None
        with contextlib.suppress(NotFound):  # the image may be gone since
            image = await self.gateway.call("InspectImage", engine_pb2.InspectImageRequest(
                reference=detail.image_id))
        await out.json(200, container_json.inspect(
            detail, image.config if image is not None else None))

    async def resize(self, req: Request, out: Responder) -> None:
        """Best effort, as for dockerd (COMPAT.md §8): a live attach stream of this
        process gets the new size (attach.py registers them)."""
        height, width = req.integer("h", 0) or 0, req.integer("w", 0) or 0
        detail = await self.detail(req.params["id"])
        if not detail.state.running:
            raise ApiError(409, f"Container {detail.id} is not running")
        resize_attached(detail.id, height, width)
        await out.body(200, b"", "text/plain; charset=utf-8")


def _matches(c: engine_pb2.ContainerSummary, wanted: filters.Filters) -> bool:
    if "label" in wanted and not filters.labels_match(c.labels, wanted["label"]):
        return False
    if "name" in wanted and not any(n.lstrip("/") in c.name for n in wanted["name"]):
        return False
    if "id" in wanted and not any(c.id.startswith(i) for i in wanted["id"]):
        return False
    if "status" in wanted and c.state not in wanted["status"]:
        return False
    if "health" in wanted and (c.health or "none") not in wanted["health"]:
        return False
    if "ancestor" in wanted and not any(a in (c.image, c.image_id) or c.image_id.startswith(
            a) for a in wanted["ancestor"]):
        return False
    attached = {e.network for e in c.network_endpoints} | \
        {e.network_id for e in c.network_endpoints}
    if "network" in wanted and not any(n in attached for n in wanted["network"]):
        return False
    return not ("exited" in wanted and (c.state != "exited" or not any(
        f"Exited ({code})" in c.status for code in wanted["exited"])))

