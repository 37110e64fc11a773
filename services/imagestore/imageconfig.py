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
from vocab.errors import InvalidArgument
from vocab.healthjson import healthcheck_json
from vocab.platform import host_arch


def docker_config(cfg: types_pb2.ImageConfig, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (an image config's "config" object) with the fields of ``cfg`` set; keys
    the proto does not carry (Shell, OnBuild, ...), and Healthcheck when ``cfg`` has
    none, are kept."""
    out = dict(base)
    out["User"] = cfg.user
    out["Env"] = list(cfg.env) or None
    out["WorkingDir"] = cfg.working_dir
    out["Labels"] = dict(cfg.labels) or None
    out["Entrypoint"] = list(cfg.entrypoint.values) if cfg.HasField("entrypoint") else None
    out["Cmd"] = list(cfg.cmd.values) if cfg.HasField("cmd") else None
    out["ExposedPorts"] = {p: {} for p in cfg.exposed_ports} or None
    out["Volumes"] = {v: {} for v in cfg.volumes} or None
    if cfg.stop_signal:
        out["StopSignal"] = cfg.stop_signal
    else:
        out.pop("StopSignal", None)
    if cfg.HasField("healthcheck"):  # a commit: the container's check (else the base's)
        out["Healthcheck"] = healthcheck_json(cfg.healthcheck)
    return {k: v for k, v in out.items() if v is not None}


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


def import_config(message: str) -> dict[str, Any]:
    arch, variant = host_arch()
    created = now()
    doc: dict[str, Any] = {"architecture": arch, "os": "linux", "created": created,
                           "config": {}}
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
