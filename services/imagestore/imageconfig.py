"""Image config documents for images made here (`import`, `commit`), shaped like Docker's.

`commit` keeps the parent's config and replaces its "config" object with the container's
(what Docker calls the container config: the image's merged with the run options), sets
"created", "author", "container", and appends one history entry. `import` makes a bare
config with the host platform and one history entry ("Imported from -").
"""

from __future__ import annotations

import json
from typing import Any

from muelle.types.v1 import types_pb2

from services.imagestore.build import now
from vocab.configjson import docker_config
from vocab.errors import InvalidArgument
from vocab.platform import host_arch


def _document(raw: bytes) -> dict[str, Any]:
    """A parent's config document; {} for one that is not a JSON object."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _add_history(doc: dict[str, Any], entry: dict[str, Any]) -> None:
    history = doc.get("history")
    doc["history"] = [*(history if isinstance(history, list) else []), entry]


def commit_config(parent_json: bytes, cfg: types_pb2.ImageConfig, *, author: str,
                  comment: str, created_by: str, container: str) -> dict[str, Any]:
    doc = _document(parent_json)
    created = now()
    base = doc.get("config")
    base = base if isinstance(base, dict) else {}
    doc["config"] = docker_config(cfg, base)
    doc["created"] = created
    if author:
        doc["author"] = author
    else:
        doc.pop("author", None)
    if container:
        doc["container"] = container
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    _add_history(doc, entry)
    return doc


def import_config(message: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    arch, variant = host_arch()
    created = now()
    doc: dict[str, Any] = {"architecture": arch, "os": "linux", "created": created,
                           "config": config or {}}
    if variant:
        doc["variant"] = variant
    doc["history"] = [{"created": created, "comment": message or "Imported from -"}]
    return doc


def step_config(parent_json: bytes | None, config: dict[str, Any], created_by: str,
                empty_layer: bool) -> dict[str, Any]:
    """A Dockerfile step's image config: the parent's (or, on scratch, a bare one for the
    host platform) with ``config`` as its "config" and one more history entry."""
    doc = _document(parent_json) if parent_json is not None else {}
    if not doc:
        arch, variant = host_arch()
        doc = {"architecture": arch, "os": "linux"}
        if variant:
            doc["variant"] = variant
    created = now()
    doc["config"] = config
    doc["created"] = created
    doc.pop("container", None)
    doc.pop("container_config", None)
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if empty_layer:
        entry["empty_layer"] = True
    _add_history(doc, entry)
    return doc


def config_object(raw: bytes) -> dict[str, Any]:
    """A build's "config" object from its JSON; INVALID_ARGUMENT unless an object."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidArgument("config_json must be a JSON object")
    return value
