"""Image endpoints: list, inspect, tag, remove (pull is pull.py)."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi import filters
from services.dockerapi.container_json import unix_seconds
from services.dockerapi.engine import Gateway
from services.dockerapi.errors import ApiError, bad_request
from services.dockerapi.http import Request, Responder
from vocab.healthjson import healthcheck_json
from vocab.reference import parse

_LIST_FILTERS = ("reference", "dangling")


def familiar(name: str) -> str:
    try:
        return parse(name).familiar
    except Exception:  # noqa: BLE001 - show what the store holds rather than fail a list
        return name


def history_json(d: engine_pb2.ImageDetail) -> list[dict[str, Any]]:
    """`docker history`: the config's history, newest first; the image's own ID and tags
    on the newest entry, "<missing>" below (as for a pulled image). engine.v1 knows the
    image's total size, not each layer's: it is the size of the layer entry when there is
    one layer, else each layer entry says 0."""
    try:
        config = json.loads(d.config_json or b"{}")
    except ValueError:
        config = {}
    entries = config.get("history") if isinstance(config, dict) else None
    if not isinstance(entries, list) or not entries:  # dockerd: one entry per layer
        entries = [{} for _ in d.diff_ids] or [{"empty_layer": True}]
    layers = sum(1 for e in entries if isinstance(e, dict) and not e.get("empty_layer"))
    rows = []
    for entry in reversed(entries):
        e = entry if isinstance(entry, dict) else {}
        empty = bool(e.get("empty_layer"))
        rows.append({
            "Id": "<missing>", "Created": unix_seconds(str(e.get("created") or "")),
            "CreatedBy": str(e.get("created_by") or ""), "Tags": None,
            "Size": d.summary.size if layers == 1 and not empty else 0,
            "Comment": str(e.get("comment") or "")})
    rows[0]["Id"] = d.summary.id
    rows[0]["Tags"] = [familiar(t) for t in d.summary.repo_tags] or None
    return rows


def _raw_config(config_json: bytes) -> dict[str, Any]:
    """The "config" object of an image's config JSON ({} when there is none)."""
    try:
        doc = json.loads(config_json) if config_json else {}
    except ValueError:
        return {}
    config = doc.get("config") if isinstance(doc, dict) else None
    return config if isinstance(config, dict) else {}


def _config(c: Any, exposed: list[str], raw: dict[str, Any]) -> dict[str, Any]:
    """Config as dockerd shows it: every field of its container.Config, from the
    contract's ImageConfig; OnBuild, Shell and Labels as the image's JSON has them (the
    contract has no OnBuild or Shell; Labels there cannot tell {} from none)."""
    labels = raw.get("Labels") if "Labels" in raw else (dict(c.labels) or None)
    extra = {key: raw[key] for key in ("Shell", "ArgsEscaped") if raw.get(key)}
    return {
        "Hostname": "", "Domainname": "", "User": c.user, "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False,
        "ExposedPorts": {p: {} for p in exposed} or None, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": list(c.env) or None,
        "Cmd": list(c.cmd.values) if c.HasField("cmd") else None,
        "Image": "", "Volumes": {v: {} for v in c.volumes} or None,
        "WorkingDir": c.working_dir,
        "Entrypoint": list(c.entrypoint.values) if c.HasField("entrypoint") else None,
        "OnBuild": raw.get("OnBuild"), "Labels": labels, "StopSignal": c.stop_signal,
        **({"Healthcheck": healthcheck_json(c.healthcheck)} if c.HasField("healthcheck")
           else {}),
        **extra,
    }


def summary(img: engine_pb2.ImageSummary) -> dict[str, Any]:
    return {
        "Id": img.id, "ParentId": "",
        "RepoTags": [familiar(t) for t in img.repo_tags] or None,
        "RepoDigests": [familiar(d) for d in img.repo_digests] or None,
        "Created": unix_seconds(img.created), "Size": img.size, "VirtualSize": img.size,
        "SharedSize": -1, "Labels": None, "Containers": -1,
    }


def _matches(img: engine_pb2.ImageSummary, wanted: filters.Filters) -> bool:
    dangling = filters.flag(wanted, "dangling")
    if dangling is not None and dangling != (not img.repo_tags):
        return False
    if "reference" in wanted:
        names = [familiar(t) for t in img.repo_tags]
        names += [n.rsplit(":", 1)[0] for n in names]
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names
                   for pattern in wanted["reference"]):
            return False
    return True


class Images:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def list(self, req: Request, out: Responder) -> None:
        wanted = filters.parse(req.arg("filters"), _LIST_FILTERS)
        reply = await self.gateway.call("ListImages", engine_pb2.ListImagesRequest(
            all=req.flag("all")))
        await out.json(200, [summary(i) for i in reply.images if _matches(i, wanted)])

    async def inspect(self, req: Request, out: Responder) -> None:
        d = await self.gateway.call("InspectImage", engine_pb2.InspectImageRequest(
            reference=req.params["name"]))
        s = d.summary
        exposed = list(d.config.exposed_ports)
        await out.json(200, {
            "Id": s.id, "RepoTags": [familiar(t) for t in s.repo_tags],
            "RepoDigests": [familiar(x) for x in s.repo_digests], "Parent": "",
            "Comment": "", "Created": s.created, "Container": "", "ContainerConfig": None,
            "DockerVersion": "", "Author": d.author,
            "Config": _config(d.config, exposed, _raw_config(d.config_json)),
            "Architecture": d.platform.architecture, "Variant": d.platform.variant or None,
            "Os": d.platform.os or "linux", "Size": s.size, "VirtualSize": s.size,
            "GraphDriver": {"Name": "overlay2", "Data": None},
            "RootFS": {"Type": "layers", "Layers": list(d.diff_ids)},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        })

    async def history(self, req: Request, out: Responder) -> None:
        d = await self.gateway.call("InspectImage", engine_pb2.InspectImageRequest(
            reference=req.params["name"]))
        await out.json(200, history_json(d))

    async def tag(self, req: Request, out: Responder) -> None:
        repo, tag = req.arg("repo"), req.arg("tag")
        if not repo:
            raise bad_request("repo is required")
        target = f"{repo}:{tag}" if tag else repo
        await self.gateway.call("TagImage", types_pb2.TagRequest(
            source=req.params["name"], target=target))
        await out.empty(201)

    async def prune(self, req: Request, out: Responder) -> None:
        wanted = filters.parse(req.arg("filters"), ("dangling", "label", "until"))
        if "label" in wanted or "until" in wanted:
            raise ApiError(400, "image prune by label or until is not supported by muelle yet")
        reply = await self.gateway.call("PruneImages", types_pb2.PruneImagesRequest(
            all=filters.flag(wanted, "dangling") is False))
        deleted = [{"Untagged": familiar(u)} for u in reply.untagged]
        deleted += [{"Deleted": d} for d in reply.deleted]
        await out.json(200, {"ImagesDeleted": deleted or None,
                             "SpaceReclaimed": reply.space_reclaimed})

    async def remove(self, req: Request, out: Responder) -> None:
        reply = await self.gateway.call("RemoveImage", types_pb2.RemoveImageRequest(
            reference=req.params["name"], force=req.flag("force")))
        await out.json(200, [*({"Untagged": familiar(u)} for u in reply.untagged),
                             *({"Deleted": d} for d in reply.deleted)])
