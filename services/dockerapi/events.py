"""``GET /events``: engine.v1 Events as Docker's JSON stream, one object per line.

``since`` and ``until`` are Unix times (seconds, with an optional fraction; the CLI turns
``10m`` or RFC 3339 into that); the stream ends once ``until`` has passed. Filters as
dockerd's: type, event (action, "exec_start" matching "exec_start: sh"), container, image,
network, volume (ID or name), label (container labels), scope.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal, InvalidOperation
from typing import Any

from muelle.engine.v1 import engine_pb2

from services.dockerapi import filters
from services.dockerapi.engine import Gateway
from services.dockerapi.errors import bad_request
from services.dockerapi.gone import while_connected
from services.dockerapi.http import Request, Responder
from services.dockerapi.images import familiar

_FILTERS = ("type", "event", "container", "image", "network", "volume", "label", "scope",
            "daemon")


def _nanos(req: Request, name: str) -> int:
    text = req.arg(name)
    if not text:
        return 0
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise bad_request(f"invalid {name} value {text!r}: want a Unix time") from None
    if value < 0:
        raise bad_request(f"invalid {name} value {text!r}: want a Unix time")
    return max(int(value * 1_000_000_000), 1)


def event_json(e: engine_pb2.Event) -> dict[str, Any]:
    attrs = dict(e.attributes)
    if e.type == "image" and "name" in attrs:  # Docker's short form: busybox:1
        attrs["name"] = familiar(attrs["name"])
    actor = familiar(e.actor_id) if e.type == "image" and "/" in e.actor_id else e.actor_id
    out: dict[str, Any] = {}
    if e.type in ("container", "image"):  # the fields of API < 1.22, still sent
        out["status"] = e.action
        out["id"] = actor
        if e.type == "container" and "image" in e.attributes:
            out["from"] = e.attributes["image"]
    out.update({"Type": e.type, "Action": e.action,
                "Actor": {"ID": actor, "Attributes": attrs},
                "scope": "local", "time": e.time_nano // 1_000_000_000, "timeNano": e.time_nano})
    return out


def _one_of(values: list[str], *candidates: str) -> bool:
    return any(v and (v == c or (len(v) >= 3 and c.startswith(v) and len(c) == 64))
               for v in values for c in candidates if c)


def matches(e: engine_pb2.Event, wanted: filters.Filters) -> bool:
    attrs = e.attributes
    if "type" in wanted and e.type not in wanted["type"]:
        return False
    if "event" in wanted and not any(e.action == v or e.action.startswith(v + ":")
                                     for v in wanted["event"]):
        return False
    if "scope" in wanted and "local" not in wanted["scope"]:
        return False
    if "daemon" in wanted:
        return False  # daemon events (reload) are not reported
    if "label" in wanted and not filters.labels_match(attrs, wanted["label"]):
        return False
    for kind in ("container", "network", "volume"):
        if kind not in wanted:
            continue
        if e.type == kind:
            if not _one_of(wanted[kind], e.actor_id, attrs.get("name", "")):
                return False
        elif kind == "container" and "container" in attrs:
            if not _one_of(wanted[kind], attrs["container"]):
                return False  # a network event about this container
        else:
            return False
    if "image" in wanted:
        if e.type == "image":
            names = (familiar(e.actor_id), familiar(attrs.get("name", "")))
        elif e.type == "container":
            names = (attrs.get("image", ""), "")
        else:
            return False
        if not any(v in names or v + ":latest" in names for v in wanted["image"]):
            return False
    return True


class Events:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def stream(self, req: Request, out: Responder) -> None:
        wanted = filters.parse(req.arg("filters"), _FILTERS)
        request = engine_pb2.EventsRequest(since_nano=_nanos(req, "since"),
                                           until_nano=_nanos(req, "until"))
        await out.start_stream(200, "application/json")
        await while_connected(out, self._relay(request, wanted, out))
        await out.end()

    async def _relay(self, request: engine_pb2.EventsRequest, wanted: filters.Filters,
                     out: Responder) -> None:
        messages: AsyncIterator[engine_pb2.Event] = self.gateway.stream("Events", request)
        async for e in messages:
            if matches(e, wanted):
                await out.write(json.dumps(event_json(e)).encode() + b"\n")
