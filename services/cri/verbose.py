"""What CRI's status calls add for ``verbose`` (crictl inspect, inspectp, inspecti), and a
container's current resources: shaped as containerd's CRI plugin shapes them, so tools
written against containerd find the same keys (`crictl inspect --template
'{{.info.pid}}'`).

The verbose ``info`` map has one key, "info", whose value is a JSON document (crictl
parses it and prints it under "info"). The OCI runtime spec is engine.v1's: the
container's config.json as it stands, with the limits of its last update."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2

from services.cri.records import HANDLER, Record

# engine.v1 container state -> containerd's processStatus (its task's status).
_PROCESS_STATUS = {"created": "created", "running": "running", "paused": "paused",
                   "exited": "stopped"}


def _spec(detail: engine_pb2.ContainerDetail) -> dict[str, Any] | None:
    try:
        spec = json.loads(detail.runtime_spec) if detail.runtime_spec else None
    except ValueError:
        return None  # not the engine's to send; say nothing rather than fail the status
    return spec if isinstance(spec, dict) else None


def _config(config: Message) -> dict[str, Any]:
    # The Go structs of cri-api carry the proto field names as their JSON names.
    return MessageToDict(config, preserving_proto_field_name=True)


def _info(doc: dict[str, Any]) -> dict[str, str]:
    return {"info": json.dumps(doc)}


def container_info(record: Record, detail: engine_pb2.ContainerDetail,
                   config: api_pb2.ContainerConfig) -> dict[str, str]:
    return _info({"sandboxID": record.sandbox_id, "pid": detail.state.pid,
                  "removing": False, "runtimeType": detail.runtime,
                  "config": _config(config), "runtimeSpec": _spec(detail)})


def sandbox_info(record: Record, detail: engine_pb2.ContainerDetail,
                 config: api_pb2.PodSandboxConfig) -> dict[str, str]:
    status = _PROCESS_STATUS.get(detail.state.status, "unknown")
    return _info({"pid": detail.state.pid, "processStatus": status,
                  # The pod's network namespace is its infra process's: gone when it is.
                  "netNamespaceClosed": not detail.state.running,
                  "image": detail.image, "runtimeHandler": record.labels.get(HANDLER, ""),
                  "runtimeType": detail.runtime, "config": _config(config),
                  "runtimeSpec": _spec(detail)})


def chain_id(diff_ids: list[str]) -> str:
    """The image's top layer ChainID (OCI image-spec config.md)."""
    chain = ""
    for diff_id in diff_ids:
        chain = diff_id if not chain else \
            "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
    return chain


def image_info(detail: engine_pb2.ImageDetail) -> dict[str, str]:
    try:
        spec = json.loads(detail.config_json) if detail.config_json else None
    except ValueError:
        spec = None
    return _info({"chainID": chain_id(list(detail.diff_ids)), "imageSpec": spec})


def resources(detail: engine_pb2.ContainerDetail) -> api_pb2.ContainerResources | None:
    """CRI's ContainerResources from the spec's linux.resources (what create set and
    UpdateContainerResources changed since); None without a spec."""
    spec = _spec(detail)
    if spec is None:
        return None
    res = spec.get("linux", {}).get("resources", {})
    cpu, memory = res.get("cpu", {}), res.get("memory", {})
    linux = api_pb2.LinuxContainerResources(
        cpu_period=_int(cpu.get("period")), cpu_quota=_int(cpu.get("quota")),
        cpu_shares=_int(cpu.get("shares")), cpuset_cpus=str(cpu.get("cpus") or ""),
        cpuset_mems=str(cpu.get("mems") or ""),
        memory_limit_in_bytes=_int(memory.get("limit")),
        memory_swap_limit_in_bytes=_int(memory.get("swap")),
        oom_score_adj=_int(spec.get("process", {}).get("oomScoreAdj")))
    for h in res.get("hugepageLimits") or []:
        linux.hugepage_limits.append(api_pb2.HugepageLimit(
            page_size=str(h.get("pageSize", "")), limit=_int(h.get("limit"))))
    for key, value in (res.get("unified") or {}).items():
        linux.unified[str(key)] = str(value)
    return api_pb2.ContainerResources(linux=linux)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
