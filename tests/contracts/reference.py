"""protos/REFERENCE.md: every service, RPC, message, field and enum of the contracts with
its comment, generated from the descriptors (so it cannot drift from the .proto files)."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from tests.contracts.descriptors import FileSet

# SourceCodeInfo paths: FileDescriptorProto.message_type = 4, service = 6, enum_type = 5;
# DescriptorProto.field = 2, nested_type = 3, enum_type = 4; ServiceDescriptorProto.method
# = 2; EnumDescriptorProto.value = 2.
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_FIELD, _NESTED, _NESTED_ENUM, _METHOD, _VALUE = 2, 3, 4, 2, 2
_TYPES = {v: k[5:].lower() for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}


def render(fileset: FileSet) -> str:
    out = ["# muelle contracts: reference", "",
           "Generated from the .proto files by `make contracts` (tests/contracts/); do not "
           "edit. Breaking changes are refused by tests/contracts/test_breaking.py.", ""]
    for f in sorted(fileset.file, key=lambda f: f.name):
        comments = {tuple(loc.path): loc.leading_comments.strip()
                    for loc in f.source_code_info.location if loc.leading_comments}
        out += [f"## `{f.package}` ({f.name})", ""]
        head = _detached(f)
        if head:
            out += [head, ""]
        for i, s in enumerate(f.service):
            out += [f"### service {s.name}", "", _text(comments, (_SERVICE, i)), ""]
            for j, rpc in enumerate(s.method):
                stream_in = "stream " if rpc.client_streaming else ""
                stream_out = "stream " if rpc.server_streaming else ""
                out.append(f"- `{rpc.name}({stream_in}{_short(rpc.input_type)}) returns "
                           f"({stream_out}{_short(rpc.output_type)})`: "
                           f"{_inline(comments, (_SERVICE, i, _METHOD, j))}")
            out.append("")
        for i, m in enumerate(f.message_type):
            out += _message(m, (_MESSAGE, i), comments, m.name)
        for i, e in enumerate(f.enum_type):
            out += _enum(e, (_ENUM, i), comments, e.name)
    return "\n".join(line.rstrip() for line in out).rstrip() + "\n"


def _message(m: descriptor_pb2.DescriptorProto, path: tuple[int, ...],
             comments: dict[tuple[int, ...], str], name: str) -> list[str]:
    out = [f"### message {name}", "", _text(comments, path), ""]
    if m.field:
        out += ["| # | field | type | about |", "|---|---|---|---|"]
        for j, fld in enumerate(m.field):
            label = "repeated " if fld.label == fld.LABEL_REPEATED else \
                "optional " if fld.proto3_optional else ""
            kind = _short(fld.type_name) if fld.type_name else _TYPES.get(fld.type, "?")
            out.append(f"| {fld.number} | `{fld.name}` | {label}{kind} | "
                       f"{_inline(comments, (*path, _FIELD, j))} |")
        out.append("")
    for j, nested in enumerate(m.nested_type):
        if nested.options.map_entry:
            continue
        out += _message(nested, (*path, _NESTED, j), comments, f"{name}.{nested.name}")
    for j, e in enumerate(m.enum_type):
        out += _enum(e, (*path, _NESTED_ENUM, j), comments, f"{name}.{e.name}")
    return out


def _enum(e: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...],
          comments: dict[tuple[int, ...], str], name: str) -> list[str]:
    out = [f"### enum {name}", "", _text(comments, path), ""]
    for j, v in enumerate(e.value):
        out.append(f"- `{v.name}` = {v.number}: {_inline(comments, (*path, _VALUE, j))}")
    return [*out, ""]


def _detached(f: descriptor_pb2.FileDescriptorProto) -> str:
    """The file's opening comment (attached to its syntax statement, path [12])."""
    for loc in f.source_code_info.location:
        if list(loc.path) == [12]:
            parts = [*loc.leading_detached_comments, loc.leading_comments]
            return " ".join(" ".join(p.split()) for p in parts if p.strip())
    return ""


def _text(comments: dict[tuple[int, ...], str], path: tuple[int, ...]) -> str:
    return " ".join(comments.get(path, "").split()) or "(no comment)"


def _inline(comments: dict[tuple[int, ...], str], path: tuple[int, ...]) -> str:
    return " ".join(comments.get(path, "").split()).replace("|", "\\|")


def _short(type_name: str) -> str:
    return type_name.lstrip(".")
