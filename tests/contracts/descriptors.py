"""The contracts as protobuf descriptors, and what makes a change to them breaking.

``build()`` compiles protos/ into a FileDescriptorSet (grpc_tools' protoc, as `make
protos`); ``breaking(old, new)`` lists the changes that break a client built against
``old``, at the wire level buf calls WIRE plus the names clients call:

- a package, service, RPC, message or enum that is gone;
- an RPC whose request or response type or streaming changed;
- a field gone without its number reserved, renumbered, or with another type, label
  (repeated/optional) or oneof;
- an enum value gone without its number reserved, or renumbered.

Adding anything is compatible. A breaking change goes into a new package version
(``muelle.engine.v2``): the old package then stays as it was.

A package may leave only by being named in ``RETIRED`` with the reason, reviewed like any
change: an internal contract whose one client ships in the same release as its server.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

REPO = Path(__file__).resolve().parents[2]
PROTOS = REPO / "protos"
SNAPSHOT = Path(__file__).with_name("snapshot.binpb")

FileSet = descriptor_pb2.FileDescriptorSet
Message = descriptor_pb2.DescriptorProto
Field = descriptor_pb2.FieldDescriptorProto

# Packages removed on purpose, with why no client outside the release can be built on them.
RETIRED = {
    "muelle.runtime.v1": "renamed muelle.shim.v1 (issue 18: \"runtime\" named four things); "
                         "the shim's contract, whose only client is the gateway of the same "
                         "release",
}


def build(source_info: bool = False) -> FileSet:
    """protos/ compiled now (with comments when ``source_info``)."""
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        args = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}",
                f"--descriptor_set_out={out}"]
        if source_info:
            args.append("--include_source_info")
        proc = subprocess.run([*args, *files], capture_output=True, text=True, cwd=PROTOS)
        if proc.returncode != 0:
            raise RuntimeError(f"protoc failed: {proc.stderr}")
        fileset = FileSet()
        fileset.ParseFromString(out.read_bytes())
    return fileset


def load_snapshot() -> FileSet:
    fileset = FileSet()
    fileset.ParseFromString(SNAPSHOT.read_bytes())
    return fileset


def write_snapshot(fileset: FileSet) -> None:
    SNAPSHOT.write_bytes(fileset.SerializeToString(deterministic=True))


def _messages(fileset: FileSet) -> dict[str, Message]:
    out: dict[str, Message] = {}

    def walk(prefix: str, msgs: list[Message]) -> None:
        for m in msgs:
            name = f"{prefix}.{m.name}"
            out[name] = m
            walk(name, list(m.nested_type))

    for f in fileset.file:
        walk(f.package, list(f.message_type))
    return out


def _enums(fileset: FileSet) -> dict[str, descriptor_pb2.EnumDescriptorProto]:
    out = {}
    for f in fileset.file:
        for e in f.enum_type:
            out[f"{f.package}.{e.name}"] = e
    for name, m in _messages(fileset).items():
        for e in m.enum_type:
            out[f"{name}.{e.name}"] = e
    return out


def _services(fileset: FileSet) -> dict[str, descriptor_pb2.ServiceDescriptorProto]:
    return {f"{f.package}.{s.name}": s for f in fileset.file for s in f.service}


def _reserved(ranges: object, number: int, inclusive: bool = False) -> bool:
    """Whether ``number`` is reserved: a message's ranges end exclusive, an enum's
    (``inclusive``) inclusive."""
    return any(r.start <= number < r.end + int(inclusive)  # type: ignore[attr-defined]
               for r in ranges)  # type: ignore[attr-defined]


def _field_kind(m: Message, f: Field) -> tuple[object, ...]:
    oneof = m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") and \
        not f.proto3_optional else ""
    return (f.type, f.type_name, f.label, f.proto3_optional, oneof)


def _without(fileset: FileSet, packages: set[str]) -> FileSet:
    kept = FileSet()
    kept.file.extend(f for f in fileset.file if f.package not in packages)
    return kept


def breaking(old: FileSet, new: FileSet) -> list[str]:
    problems: list[str] = []
    packages = {f.package for f in new.file}
    old = _without(old, set(RETIRED) - packages)
    for pkg in sorted({f.package for f in old.file} - packages):
        problems.append(f"package {pkg} removed")

    new_msgs = _messages(new)
    for name, m in _messages(old).items():
        if name not in new_msgs:
            problems.append(f"message {name} removed")
            continue
        n = new_msgs[name]
        by_number = {f.number: f for f in n.field}
        by_name = {f.name: f for f in n.field}
        for f in m.field:
            now = by_number.get(f.number)
            if now is None:
                if f.name in by_name:
                    problems.append(f"field {name}.{f.name} renumbered "
                                    f"{f.number} -> {by_name[f.name].number}")
                elif not _reserved(n.reserved_range, f.number):
                    problems.append(f"field {name}.{f.name} ({f.number}) removed without "
                                    f"reserving its number")
                continue
            if _field_kind(m, f) != _field_kind(n, now):
                problems.append(f"field {name}.{f.name} ({f.number}) changed type, label "
                                f"or oneof")
            elif now.name != f.name:
                problems.append(f"field {name}.{f.name} ({f.number}) renamed to {now.name} "
                                f"(JSON and generated code change)")

    new_enums = _enums(new)
    for name, e in _enums(old).items():
        if name not in new_enums:
            problems.append(f"enum {name} removed")
            continue
        values = {v.name: v.number for v in new_enums[name].value}
        numbers = set(values.values())
        for v in e.value:
            if v.name in values and values[v.name] != v.number:
                problems.append(f"enum value {name}.{v.name} renumbered "
                                f"{v.number} -> {values[v.name]}")
            elif v.name not in values and v.number not in numbers and \
                    not _reserved(new_enums[name].reserved_range, v.number, inclusive=True):
                problems.append(f"enum value {name}.{v.name} ({v.number}) removed without "
                                f"reserving its number")

    new_services = _services(new)
    for name, s in _services(old).items():
        if name not in new_services:
            problems.append(f"service {name} removed")
            continue
        rpcs = {r.name: r for r in new_services[name].method}
        for r in s.method:
            rpc = rpcs.get(r.name)
            if rpc is None:
                problems.append(f"rpc {name}.{r.name} removed")
            elif (r.input_type, r.output_type, r.client_streaming, r.server_streaming) != \
                    (rpc.input_type, rpc.output_type, rpc.client_streaming,
                     rpc.server_streaming):
                problems.append(f"rpc {name}.{r.name} changed its request, response or "
                                f"streaming")
    return problems


def without_source_info(fileset: FileSet) -> FileSet:
    copy = FileSet()
    copy.CopyFrom(fileset)
    for f in copy.file:
        f.ClearField("source_code_info")
    return copy
