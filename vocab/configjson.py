"""An image's "config" object in Docker's JSON from a types.v1 ImageConfig: what the image
store's commit stores, and what the gateway's `commit --change` applies changes to.
Duck-typed over the message: nothing imported."""

from __future__ import annotations

from typing import Any

from vocab.healthjson import healthcheck_json


def docker_config(cfg: Any, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (an image config's "config" object) with the fields of ``cfg`` set; keys
    the proto does not carry (Shell, OnBuild, ...), and Healthcheck when ``cfg`` has
    none, are kept."""
    out = dict(base)
    out["User"] = cfg.user
    out["Env"] = list(cfg.env) or None
    out["WorkingDir"] = cfg.working_dir
    out["Labels"] = dict(cfg.labels)  # dockerd commits {} when there are none
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
