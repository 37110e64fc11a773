"""How a CRI object is kept: as an engine container whose labels carry its CRI config.

muelle-cri keeps no state of its own. A pod sandbox is its infra container, a CRI container
is an engine container, and each carries under ``io.muelle.cri.*`` labels what CRI needs
back (kind, sandbox, the whole CRI config as serialized protobuf). So the component may
restart, or several may serve one engine, and still agree on what exists; and nothing can
get out of step with the engine's own records.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc

from vocab import timefmt
from vocab.errors import InvalidArgument, NotFound

PREFIX = "io.muelle.cri."
KIND = PREFIX + "kind"  # "sandbox" or "container"
SANDBOX = PREFIX + "sandbox"  # container -> its sandbox's ID
CONFIG = PREFIX + "config"  # base64 of the serialized PodSandboxConfig / ContainerConfig
LOG_PATH = PREFIX + "log-path"  # container: absolute CRI log file, "" = none
IMAGE = PREFIX + "image"  # container: the image as the kubelet named it
HANDLER = PREFIX + "runtime-handler"  # sandbox: its RuntimeClass handler ("" = default)

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_.-]")


def engine_name(*parts: str) -> str:
    """An engine container name from CRI names (containerd's ``k8s_<ctr>_<pod>_<ns>_<uid>_
    <attempt>`` shape). The engine refuses a second container of one name, which gives CRI
    its rule that a sandbox or container name is unique, atomically."""
    name = "_".join(_NAME_BAD.sub("-", p) for p in parts)
    return name if name[:1].isalnum() else "k" + name


def encode(message: api_pb2.PodSandboxConfig | api_pb2.ContainerConfig) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


def created_ns(text: str) -> int:
    try:
        return timefmt.parse_ns(text) if text else 0
    except ValueError:
        return 0


@dataclass
class Record:
    """One engine container that is a CRI sandbox or container."""
    id: str
    kind: str
    sandbox_id: str  # containers only
    state: str  # engine state: "created", "running", "paused", "exited"
    created: int  # ns since the epoch
    labels: dict[str, str]  # the engine labels (ours included)
    image_id: str

    def sandbox_config(self) -> api_pb2.PodSandboxConfig:
        config = api_pb2.PodSandboxConfig()
        _decode(config, self.labels.get(CONFIG, ""))
        return config

    def container_config(self) -> api_pb2.ContainerConfig:
        config = api_pb2.ContainerConfig()
        _decode(config, self.labels.get(CONFIG, ""))
        return config


def _decode(message: api_pb2.PodSandboxConfig | api_pb2.ContainerConfig, text: str) -> None:
    try:
        message.ParseFromString(base64.b64decode(text.encode(), validate=True))
    except (ValueError, DecodeError):
        message.Clear()  # a label edited by hand: the object still lists, without config


def from_summary(summary: engine_pb2.ContainerSummary) -> Record | None:
    labels = dict(summary.labels)
    kind = labels.get(KIND, "")
    if kind not in ("sandbox", "container"):
        return None
    return Record(summary.id, kind, labels.get(SANDBOX, ""), summary.state,
                  created_ns(summary.created), labels, summary.image_id)


def from_detail(detail: engine_pb2.ContainerDetail) -> Record | None:
    labels = dict(detail.labels)
    kind = labels.get(KIND, "")
    if kind not in ("sandbox", "container"):
        return None
    return Record(detail.id, kind, labels.get(SANDBOX, ""), detail.state.status,
                  created_ns(detail.created), labels, detail.image_id)


def selected(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """CRI's label_selector: every key present with that value."""
    return all(labels.get(k) == v for k, v in selector.items())


def lookup(engine: engine_pb2_grpc.EngineStub, ref: str, kind: str,
           runtime_spec: bool = False) -> tuple[Record, engine_pb2.ContainerDetail] | None:
    """The CRI ``kind`` object ``ref`` names (an ID or unique ID prefix, as crictl passes),
    with the engine's detail; None when there is none: an engine container that is not a
    CRI object of that kind does not exist for CRI. ``runtime_spec``: with its OCI
    runtime spec (the current limits, verbose status)."""
    if not ref:
        raise InvalidArgument(f"a {'pod sandbox' if kind == 'sandbox' else kind} ID is required")
    try:
        detail = engine.InspectContainer(engine_pb2.InspectContainerRequest(
            container=ref, runtime_spec=runtime_spec))
    except NotFound:
        return None
    record = from_detail(detail)
    if record is None or record.kind != kind:
        return None
    return record, detail


def list_all(engine: engine_pb2_grpc.EngineStub, kind: str) -> list[Record]:
    reply = engine.ListContainers(engine_pb2.ListContainersRequest(all=True))
    found = (from_summary(s) for s in reply.containers)
    return [r for r in found if r is not None and r.kind == kind]
