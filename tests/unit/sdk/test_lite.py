"""clients/sdk/lite.py against the generated classes: same bytes, same presence rules."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as PbMessage
from muelle.engine.v1 import engine_pb2
from muelle.lite_schema import MESSAGES, METHODS
from muelle.types.v1 import types_pb2

from clients.sdk import lite

T = FieldDescriptor


def _sample(ftype: int, n: int) -> Any:
    if ftype == T.TYPE_STRING:
        return f"välue-{n}"
    if ftype == T.TYPE_BYTES:
        return bytes([n % 256, 0, 255])
    if ftype == T.TYPE_BOOL:
        return True
    if ftype in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
        return 1.5
    if ftype in (T.TYPE_INT32, T.TYPE_INT64, T.TYPE_SINT32, T.TYPE_SINT64):
        return -n if n % 2 else n + 300
    return n + 200


def _fill(msg: PbMessage, depth: int = 0) -> None:
    """Every field of ``msg`` set to something other than its default."""
    f: Any
    for i, f in enumerate(msg.DESCRIPTOR.fields):
        if f.containing_oneof is not None and not f.containing_oneof.name.startswith("_") \
                and msg.WhichOneof(f.containing_oneof.name):
            continue  # one member of a real oneof
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            value_field = f.message_type.fields_by_name["value"]
            target = getattr(msg, f.name)
            for key in ("a", "b"):
                if value_field.message_type is not None:
                    if depth < 2:
                        _fill(target[key], depth + 1)
                else:
                    target[key] = _sample(value_field.type, i)
        elif f.is_repeated:
            target = getattr(msg, f.name)
            if f.message_type is not None:
                if depth < 2:
                    _fill(target.add(), depth + 1)
                    target.add()
            else:
                target.extend([_sample(f.type, i), _sample(f.type, i + 1)])
        elif f.message_type is not None:
            if depth < 2:
                _fill(getattr(msg, f.name), depth + 1)
            else:
                getattr(msg, f.name).SetInParent()
        else:
            setattr(msg, f.name, _sample(f.type, i))


def _generated(full_name: str) -> type[PbMessage]:
    package, _, name = full_name.rpartition(".")
    module = engine_pb2 if package == "muelle.engine.v1" else types_pb2
    cls: type[PbMessage] = getattr(module, name)
    return cls


@pytest.mark.parametrize("full_name", sorted(MESSAGES))
def test_every_message_round_trips_with_the_generated_class(full_name: str) -> None:
    pb = _generated(full_name)()
    _fill(pb)
    data = pb.SerializeToString()
    msg = lite.message_class(full_name).FromString(data)
    assert _generated(full_name).FromString(msg.SerializeToString()) == pb
    assert msg.ByteSize() == len(data)


def test_the_schema_covers_every_message_and_method() -> None:
    names = {d.full_name for m in (engine_pb2, types_pb2)
             for d in m.DESCRIPTOR.message_types_by_name.values()}
    assert set(MESSAGES) == names
    service = engine_pb2.DESCRIPTOR.services_by_name["Engine"]
    assert {m.name: (m.input_type.full_name, m.output_type.full_name)
            for m in service.methods} == METHODS


def test_keyword_construction_matches_the_generated_class() -> None:
    kwargs: dict[str, Any] = dict(
        image="busybox", env=["A=1"], auto_remove=True, pids_limit=-1, labels={"k": "v"},
        memory=1 << 40, ports=[types_pb2.NetworkPort(container_port=80, protocol="tcp")],
        tmpfs={"/run": "size=1m"})
    pb = engine_pb2.CreateContainerRequest(**kwargs)
    kwargs["ports"] = [lite.types.NetworkPort(container_port=80, protocol="tcp")]
    msg = lite.engine.CreateContainerRequest(**kwargs)
    assert engine_pb2.CreateContainerRequest.FromString(msg.SerializeToString()) == pb


def test_presence_of_submessages_follows_protobuf() -> None:
    msg = lite.engine.CreateContainerRequest()
    assert msg.cmd.values == []  # reading does not make it present
    assert not msg.HasField("cmd")
    assert msg.SerializeToString() == b""
    msg.cmd.values.extend([])  # a change, even an empty one, does
    assert msg.HasField("cmd")
    pb = engine_pb2.CreateContainerRequest.FromString(msg.SerializeToString())
    assert pb.HasField("cmd") and list(pb.cmd.values) == []
    msg.console_size.rows = 0
    assert msg.HasField("console_size")


def test_optional_scalars_keep_an_explicit_zero() -> None:
    msg = lite.engine.CreateContainerRequest()
    assert not msg.HasField("stop_timeout") and msg.stop_timeout == 0
    msg.stop_timeout = 0
    assert msg.HasField("stop_timeout")
    assert engine_pb2.CreateContainerRequest.FromString(
        msg.SerializeToString()).HasField("stop_timeout")
    msg.ClearField("stop_timeout")
    assert not msg.HasField("stop_timeout")


def test_oneof_members_replace_each_other() -> None:
    event = lite.engine.AttachEvent()
    assert event.WhichOneof("event") is None
    event.output.data = b"x"
    assert event.WhichOneof("event") == "output"
    event.exit.exit_code = 3
    assert event.WhichOneof("event") == "exit" and not event.HasField("output")
    parsed = lite.engine.AttachEvent.FromString(
        engine_pb2.AttachEvent(exit=engine_pb2.WaitContainerResponse()).SerializeToString())
    assert parsed.HasField("exit") and parsed.exit.exit_code == 0


def test_bad_values_are_refused_like_the_generated_classes() -> None:
    msg = lite.engine.CreateContainerRequest()
    with pytest.raises(TypeError):
        msg.memory = "1g"
    with pytest.raises(ValueError):
        msg.stop_timeout = 1 << 40  # int32
    with pytest.raises(ValueError):
        lite.engine.CreateContainerRequest(no_such_field=1)
    with pytest.raises(AttributeError):
        msg.cmd = lite.types.StringList()
    with pytest.raises(ValueError):
        msg.HasField("image")  # implicit presence: not testable, as in protobuf


def test_unknown_fields_are_skipped_and_truncation_is_an_error() -> None:
    newer = engine_pb2.CreateContainerResponse(id="abc").SerializeToString() + \
        b"\xf8\x07\x01"  # field 127, varint: from a newer gateway
    assert lite.engine.CreateContainerResponse.FromString(newer).id == "abc"
    with pytest.raises(lite.DecodeError):
        lite.engine.CreateContainerResponse.FromString(b"\x0a\x05ab")


def test_maps_of_messages_and_negative_numbers_decode() -> None:
    pb = engine_pb2.VersionResponse(components={"shim": "1.0"})
    assert dict(lite.engine.VersionResponse.FromString(pb.SerializeToString()).components) \
        == {"shim": "1.0"}
    stop = engine_pb2.StopContainerRequest(timeout=-1)
    assert lite.engine.StopContainerRequest.FromString(stop.SerializeToString()).timeout == -1


def test_a_field_of_the_wrong_wire_type_is_skipped_as_unknown() -> None:
    # exit (2) is a message; sent as a varint it is not that field (protobuf keeps such
    # bytes as unknown fields and leaves the field unset)
    event = lite.engine.AttachEvent.FromString(b"\x10\x05")
    assert event.WhichOneof("event") is None
    nested = lite.engine.AttachEvent.FromString(b"\x0a\x02\x10\x01\x12\x00")
    assert nested.WhichOneof("event") == "exit" and not nested.exit.oom_killed
    assert lite.engine.CreateContainerResponse.FromString(b"\x08\x05").id == ""


@pytest.mark.parametrize("data", [b"\x7a\x05a", b"\x0a\x05ab", b"\x0d\x01", b"\x09\x01\x02",
                                  b"\x08", b"\x08\xff"])
def test_truncated_bytes_are_a_decode_error(data: bytes) -> None:
    with pytest.raises(lite.DecodeError):
        lite.engine.CreateContainerResponse.FromString(data)


def test_parse_and_copy_replace_every_field_and_keep_working() -> None:
    """Values live in the instance's dict beside its bookkeeping: a reparse or a copy
    drops the old fields (set or present) and the message still encodes and tracks."""
    msg = lite.engine.ContainerSummary(id="a", name="n", labels={"k": "v"}, ports=[{}])
    msg.ParseFromString(engine_pb2.ContainerSummary(image="i").SerializeToString())
    assert (msg.id, msg.name, msg.image, dict(msg.labels), len(msg.ports)) == \
        ("", "", "i", {}, 0)
    other = lite.engine.ContainerSummary(state="running")
    msg.CopyFrom(other)
    assert (msg.image, msg.state) == ("", "running")
    msg.id = "b"
    assert engine_pb2.ContainerSummary.FromString(msg.SerializeToString()) == \
        engine_pb2.ContainerSummary(id="b", state="running")
    detail = lite.engine.ContainerDetail()
    detail.state.status = "running"  # a submessage marks its parent present
    assert detail.HasField("state")
    detail.ParseFromString(b"")
    assert not detail.HasField("state") and detail.state.status == ""
