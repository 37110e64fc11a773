"""Volume endpoints: list (filters), inspect, create, remove, prune (local driver only)."""

from __future__ import annotations

from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi import filters
from services.dockerapi.engine import Gateway
from services.dockerapi.errors import ApiError, bad_request
from services.dockerapi.http import Request, Responder

_LIST_FILTERS = ("name", "label", "dangling", "driver")


def volume_json(v: types_pb2.Volume) -> dict[str, Any]:
    return {"Name": v.name, "Driver": v.driver or "local", "Mountpoint": v.mountpoint,
            "CreatedAt": v.created_at, "Labels": dict(v.labels) or None, "Scope": "local",
            "Options": None}


def _matches(v: types_pb2.Volume, wanted: filters.Filters) -> bool:
    if "name" in wanted and not any(n in v.name for n in wanted["name"]):
        return False
    if "label" in wanted and not filters.labels_match(v.labels, wanted["label"]):
        return False
    if "driver" in wanted and "local" not in wanted["driver"]:
        return False
    dangling = filters.flag(wanted, "dangling")
    if dangling is not None:
        return dangling == (not v.containers)
    return True


class Volumes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def list(self, req: Request, out: Responder) -> None:
        wanted = filters.parse(req.arg("filters"), _LIST_FILTERS)
        reply = await self.gateway.call("ListVolumes", engine_pb2.VolumeListRequest())
        await out.json(200, {"Volumes": [volume_json(v) for v in reply.volumes
                                         if _matches(v, wanted)], "Warnings": None})

    async def inspect(self, req: Request, out: Responder) -> None:
        v = await self.gateway.call("InspectVolume", types_pb2.VolumeInspectRequest(
            name=req.params["name"]))
        await out.json(200, volume_json(v))

    async def create(self, req: Request, out: Responder) -> None:
        body = req.json({})
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        if (body.get("Driver") or "local") != "local":
            raise ApiError(400, f"volume driver {body['Driver']!r} is not supported by "
                                "muelle yet (local only)")
        if body.get("DriverOpts"):
            raise ApiError(400, "volume DriverOpts are not supported by muelle yet")
        labels = body.get("Labels") or {}
        if not isinstance(labels, dict):
            raise bad_request("Labels must be an object")
        v = await self.gateway.call("CreateVolume", types_pb2.VolumeCreateRequest(
            name=str(body.get("Name") or ""),
            labels={str(k): str(val) for k, val in labels.items()}))
        await out.json(201, volume_json(v))

    async def remove(self, req: Request, out: Responder) -> None:
        await self.gateway.call("RemoveVolume", types_pb2.VolumeRemoveRequest(
            name=req.params["name"], force=req.flag("force")))
        await out.empty()

    async def prune(self, req: Request, out: Responder) -> None:
        wanted = filters.parse(req.arg("filters"), ("label", "all"))
        if "label" in wanted:
            raise ApiError(400, "volume prune by label is not supported by muelle yet")
        show_all = bool(filters.flag(wanted, "all"))
        reply = await self.gateway.call("PruneVolumes",
                                        types_pb2.VolumePruneRequest(all=show_all))
        await out.json(200, {"VolumesDeleted": list(reply.volumes) or None,
                             "SpaceReclaimed": reply.space_reclaimed})
