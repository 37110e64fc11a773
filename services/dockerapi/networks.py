"""Network endpoints: list (filters), inspect, create, remove, connect, disconnect, prune.

engine.v1 networks are Linux bridges with IPv4 IPAM and labels (kept by the gateway;
Compose finds its networks by them); they carry no driver options yet, so a create that
asks for them (or another driver, IPv6, internal) is refused by name.
"""

from __future__ import annotations

from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi import filters
from services.dockerapi.engine import Gateway
from services.dockerapi.errors import ApiError, bad_request
from services.dockerapi.http import Request, Responder

_LIST_FILTERS = ("name", "id", "type", "driver", "label", "scope", "dangling")
ZERO_TIME = "0001-01-01T00:00:00Z"


def network_json(n: types_pb2.NetworkInfo, names: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    """``names``: container ID -> name, for the Containers map of inspect."""
    ipam = [{"Subnet": n.subnet, "Gateway": n.gateway}] if n.subnet else []
    return {
        "Name": n.name, "Id": n.id, "Created": n.created or ZERO_TIME, "Scope": "local",
        "Driver": n.driver or "bridge", "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
        "Internal": False, "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": {cid: {"Name": (names or {}).get(cid, ""), "EndpointID": "",
                             "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}
                       for cid in n.containers},
        "Options": {"com.docker.network.bridge.name": n.bridge} if n.bridge else {},
        "Labels": dict(n.labels),
    }


def _matches(n: types_pb2.NetworkInfo, wanted: filters.Filters) -> bool:
    if "label" in wanted and not filters.labels_match(n.labels, wanted["label"]):
        return False
    if "name" in wanted and not any(v in n.name for v in wanted["name"]):
        return False
    if "id" in wanted and not any(n.id.startswith(v) for v in wanted["id"]):
        return False
    if "type" in wanted and ("builtin" if n.builtin else "custom") not in wanted["type"]:
        return False
    if "driver" in wanted and (n.driver or "bridge") not in wanted["driver"]:
        return False
    dangling = filters.flag(wanted, "dangling")
    if dangling is not None and dangling != (not n.containers and not n.builtin):
        return False
    return not ("scope" in wanted and "local" not in wanted["scope"])


def _labels(body: dict[str, Any]) -> dict[str, str]:
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise bad_request("Labels must be a JSON object of strings")
    return {str(k): str(v) for k, v in labels.items()}


def _check_create(body: dict[str, Any]) -> str:
    """The subnet asked for; refuses what engine.v1 networks cannot be."""
    if (body.get("Driver") or "bridge") != "bridge":
        raise ApiError(400, f"network driver {body['Driver']!r} is not supported by muelle "
                            "yet (bridge only)")
    # Attachable is what every muelle network is (any container may connect): accepted.
    for key in ("Internal", "EnableIPv6", "Ingress", "ConfigOnly"):
        if body.get(key):
            raise ApiError(400, f"network {key} is not supported by muelle yet")
    if body.get("Options"):
        raise ApiError(400, "network Options are not supported by muelle yet")
    ipam = body.get("IPAM") or {}
    configs = ipam.get("Config") or [] if isinstance(ipam, dict) else []
    if len(configs) > 1:
        raise ApiError(400, "more than one IPAM pool is not supported by muelle yet")
    return str(configs[0].get("Subnet") or "") if configs else ""


class Networks:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def list(self, req: Request, out: Responder) -> None:
        wanted = filters.parse(req.arg("filters"), _LIST_FILTERS)
        reply = await self.gateway.call("ListNetworks", engine_pb2.NetworkListRequest())
        await out.json(200, [network_json(n) for n in reply.networks if _matches(n, wanted)])

    async def inspect(self, req: Request, out: Responder) -> None:
        n = await self.gateway.call("InspectNetwork", types_pb2.NetworkInspectRequest(
            network=req.params["id"]))
        listed = await self.gateway.call("ListContainers",
                                         engine_pb2.ListContainersRequest(all=True))
        names = {c.id: c.name for c in listed.containers}
        await out.json(200, network_json(n, names))

    async def create(self, req: Request, out: Responder) -> None:
        body = req.json({})
        if not isinstance(body, dict) or not isinstance(body.get("Name"), str) \
                or not body["Name"]:
            raise bad_request("the body must be a JSON object with a Name")
        subnet = _check_create(body)
        n = await self.gateway.call("CreateNetwork", types_pb2.NetworkCreateRequest(
            name=body["Name"], subnet=subnet, labels=_labels(body)))
        await out.json(201, {"Id": n.id, "Warning": ""})

    async def remove(self, req: Request, out: Responder) -> None:
        await self.gateway.call("RemoveNetwork", types_pb2.NetworkRemoveRequest(
            network=req.params["id"]))
        await out.empty()

    async def connect(self, req: Request, out: Responder) -> None:
        body = req.json({})
        if not isinstance(body, dict) or not body.get("Container"):
            raise bad_request("the body must name a Container")
        endpoint = body.get("EndpointConfig") or {}
        endpoint = endpoint if isinstance(endpoint, dict) else {}
        await self.gateway.call("ConnectNetwork", engine_pb2.NetworkConnectRequest(
            network=req.params["id"], container=str(body["Container"]),
            aliases=[str(a) for a in endpoint.get("Aliases") or []],
            links=[str(a) for a in endpoint.get("Links") or []]))
        await out.body(200, b"", "text/plain; charset=utf-8")

    async def disconnect(self, req: Request, out: Responder) -> None:
        body = req.json({})
        if not isinstance(body, dict) or not body.get("Container"):
            raise bad_request("the body must name a Container")
        await self.gateway.call("DisconnectNetwork", engine_pb2.NetworkDisconnectRequest(
            network=req.params["id"], container=str(body["Container"])))
        await out.body(200, b"", "text/plain; charset=utf-8")

    async def prune(self, req: Request, out: Responder) -> None:
        filters.parse(req.arg("filters"), ("label", "until"))
        reply = await self.gateway.call("ListNetworks", engine_pb2.NetworkListRequest())
        deleted = []
        for n in reply.networks:
            if n.builtin or n.containers:
                continue
            await self.gateway.call("RemoveNetwork",
                                    types_pb2.NetworkRemoveRequest(network=n.id))
            deleted.append(n.name)
        await out.json(200, {"NetworksDeleted": deleted or None})
