"""The contracts are a product: no change may break a client built against the snapshot.

The snapshot (snapshot.binpb) is what protos/ held when `make contracts` last ran; a
compatible change (anything added) needs that run too, so the snapshot always holds every
field a client may use, and protos/REFERENCE.md stays in step with the comments.
"""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from tests.contracts import descriptors, reference
from tests.contracts.descriptors import PROTOS, FileSet


@pytest.fixture(scope="module")
def current() -> FileSet:
    return descriptors.build(source_info=True)


def test_no_breaking_change_against_the_snapshot(current: FileSet) -> None:
    problems = descriptors.breaking(descriptors.load_snapshot(),
                                    descriptors.without_source_info(current))
    assert problems == [], "breaking contract changes (make a v2 package instead):\n" + \
        "\n".join(problems)


def test_the_snapshot_and_the_reference_are_up_to_date(current: FileSet) -> None:
    stripped = descriptors.without_source_info(current)
    assert stripped.SerializeToString(deterministic=True) == \
        descriptors.load_snapshot().SerializeToString(deterministic=True), \
        "protos/ changed compatibly: run `make contracts` and commit the snapshot"
    assert (PROTOS / "REFERENCE.md").read_text() == reference.render(current), \
        "protos/REFERENCE.md is stale: run `make contracts`"


def _message(fs: FileSet, pkg: str, name: str) -> descriptor_pb2.DescriptorProto:
    for f in fs.file:
        if f.package == pkg:
            for m in f.message_type:
                if m.name == name:
                    return m
    raise KeyError(name)


def _copy(fs: FileSet) -> FileSet:
    out = FileSet()
    out.CopyFrom(fs)
    return out


def test_the_checker_finds_each_kind_of_break() -> None:
    old = descriptors.load_snapshot()
    assert descriptors.breaking(old, old) == []

    new = _copy(old)
    msg = _message(new, "muelle.engine.v1", "CreateContainerRequest")
    removed = msg.field[0]
    del msg.field[0]
    assert any("removed without reserving" in p for p in descriptors.breaking(old, new))
    msg.reserved_range.add(start=removed.number, end=removed.number + 1)
    assert descriptors.breaking(old, new) == []

    new = _copy(old)
    msg = _message(new, "muelle.engine.v1", "CreateContainerRequest")
    msg.field[0].number = 999
    assert any("renumbered" in p for p in descriptors.breaking(old, new))

    new = _copy(old)
    msg = _message(new, "muelle.engine.v1", "CreateContainerRequest")
    f = next(f for f in msg.field if f.type == f.TYPE_STRING)
    f.type = f.TYPE_BYTES
    assert any("changed type" in p for p in descriptors.breaking(old, new))

    new = _copy(old)
    svc = next(s for f in new.file for s in f.service if s.name == "Engine")
    del svc.method[0]
    assert any(p.startswith("rpc muelle.engine.v1.Engine.") for p in
               descriptors.breaking(old, new))

    new = _copy(old)
    svc = next(s for f in new.file for s in f.service if s.name == "Engine")
    svc.method[0].server_streaming = not svc.method[0].server_streaming
    assert any("streaming" in p for p in descriptors.breaking(old, new))

    new = _copy(old)
    f0 = next(f for f in new.file if f.package == "muelle.engine.v1")
    del f0.message_type[-1]
    assert any(p.startswith("message ") for p in descriptors.breaking(old, new))

    new = _copy(old)
    new.file[0].package = new.file[0].package.replace(".v1", ".v2")
    assert any(p.startswith("package ") for p in descriptors.breaking(old, new))


def test_adding_is_compatible() -> None:
    old = descriptors.load_snapshot()
    new = _copy(old)
    msg = _message(new, "muelle.engine.v1", "CreateContainerRequest")
    msg.field.add(name="brand_new", number=9999, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, json_name="brandNew")
    f0 = next(f for f in new.file if f.package == "muelle.engine.v1")
    f0.message_type.add(name="AlsoNew")
    assert descriptors.breaking(old, new) == []


def test_only_a_retired_package_may_leave() -> None:
    current = descriptors.load_snapshot()
    old = _copy(current)
    shim = next(f for f in old.file if f.package == "muelle.shim.v1")
    retired = old.file.add()
    retired.CopyFrom(shim)
    retired.name, retired.package = "muelle/runtime/v1/runtime.proto", "muelle.runtime.v1"
    assert "muelle.runtime.v1" in descriptors.RETIRED
    assert descriptors.breaking(old, current) == []

    retired.package = "muelle.other.v1"
    assert "package muelle.other.v1 removed" in descriptors.breaking(old, current)
