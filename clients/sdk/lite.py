"""engine.v1 messages without the protobuf runtime, for the CLI.

Importing google.protobuf costs a process ~47 ms (descriptor_pool pulls in python_message
and text_format even with the upb backend): a third of a `muelle run --rm`. These classes
speak the same wire format from a schema of literals that `make protos` generates from the
descriptors (clients/sdk/schema_gen.py), and offer the part of the generated classes' API
the CLI uses: keyword constructors, attributes with proto3 defaults, repeated fields and
maps, presence (HasField, WhichOneof, ClearField), CopyFrom, SerializeToString, FromString.

Usage: ``lite.engine.CreateContainerRequest(image="busybox")``; ``lite.types.StringList``.
"""

from __future__ import annotations

import struct

from muelle.lite_schema import MESSAGES, METHODS, SERVICE

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# descriptor type numbers (google.protobuf.descriptor.FieldDescriptor.TYPE_*)
DOUBLE, FLOAT, INT64, UINT64, INT32, FIXED64, FIXED32, BOOL, STRING = 1, 2, 3, 4, 5, 6, 7, 8, 9
MESSAGE, BYTES, UINT32, ENUM, SFIXED32, SFIXED64, SINT32, SINT64 = 11, 12, 13, 14, 15, 16, 17, 18
SINGULAR, OPTIONAL, REPEATED, MAP = 0, 1, 2, 3  # label codes of schema_gen.py

VARINT_TYPES = {INT64, UINT64, INT32, BOOL, UINT32, ENUM, SINT32, SINT64}
FIXED = {DOUBLE: "<d", FLOAT: "<f", FIXED64: "<Q", FIXED32: "<I", SFIXED32: "<i",
         SFIXED64: "<q"}
RANGES = {INT32: (-(1 << 31), (1 << 31) - 1), UINT32: (0, (1 << 32) - 1),
          SFIXED32: (-(1 << 31), (1 << 31) - 1), FIXED32: (0, (1 << 32) - 1),
          SINT32: (-(1 << 31), (1 << 31) - 1), INT64: (-(1 << 63), (1 << 63) - 1),
          SINT64: (-(1 << 63), (1 << 63) - 1), SFIXED64: (-(1 << 63), (1 << 63) - 1),
          UINT64: (0, (1 << 64) - 1), FIXED64: (0, (1 << 64) - 1),
          ENUM: (-(1 << 31), (1 << 31) - 1)}


class DecodeError(Exception):
    """Bytes that are not a valid message of the expected type."""


def _default(ftype: int) -> Any:
    if ftype == STRING:
        return ""
    if ftype == BYTES:
        return b""
    if ftype == BOOL:
        return False
    if ftype in (DOUBLE, FLOAT):
        return 0.0
    return 0


def _check(field: Field, value: Any) -> Any:
    """The value as the generated classes accept it, or their TypeError/ValueError."""
    t = field.type
    if t == STRING:
        if isinstance(value, bytes):
            return value.decode()
        if not isinstance(value, str):
            raise TypeError(f"{value!r} has type {type(value).__name__}, but expected one "
                            f"of: bytes, str (field {field.name})")
    elif t == BYTES:
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"{value!r} has type {type(value).__name__}, but expected one "
                            f"of: bytes (field {field.name})")
        return bytes(value)
    elif t == BOOL:
        if not isinstance(value, int):
            raise TypeError(f"{value!r} has type {type(value).__name__}, but expected one "
                            f"of: int, bool (field {field.name})")
        return bool(value)
    elif t in (DOUBLE, FLOAT):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"{value!r} is not a number (field {field.name})")
        return float(value)
    else:
        if not isinstance(value, int):
            raise TypeError(f"{value!r} has type {type(value).__name__}, but expected one "
                            f"of: int (field {field.name})")
        low, high = RANGES[t]
        if not low <= value <= high:
            raise ValueError(f"Value out of range: {value} (field {field.name})")
        return int(value)
    return value


class Field:
    __slots__ = ("name", "number", "type", "label", "message", "oneof")

    def __init__(self, name: str, number: int, ftype: int, label: int,
                 message: str | None, oneof: str | None) -> None:
        self.name, self.number, self.type, self.label = name, number, ftype, label
        self.message, self.oneof = message, oneof

    @property
    def has_presence(self) -> bool:
        return (self.label == OPTIONAL or self.type == MESSAGE) and self.label != REPEATED


# ------------------------------------------------------------------ containers


class Repeated(list):  # type: ignore[type-arg]
    """A repeated field: a list that marks its message present when it changes."""

    def __init__(self, owner: Message, field: Field, items: Iterable[Any] = ()) -> None:
        super().__init__()
        self._owner = owner
        self._field = field
        if items:
            self.extend(items)

    def _value(self, item: Any) -> Any:
        if self._field.type == MESSAGE:
            cls = message_class(self._field.message or "")
            if isinstance(item, dict):
                return cls(**item)
            if not isinstance(item, Message) or item._full_name != cls._full_name:
                raise TypeError(f"expected {cls._full_name}, got {type(item).__name__}")
            return item
        return _check(self._field, item)

    def append(self, item: Any) -> None:
        super().append(self._value(item))
        self._owner._touch()

    def extend(self, items: Iterable[Any]) -> None:
        super().extend(self._value(i) for i in items)
        self._owner._touch()

    def insert(self, index: Any, item: Any) -> None:
        super().insert(index, self._value(item))
        self._owner._touch()

    def add(self, **fields: Any) -> Message:
        item = message_class(self._field.message or "")(**fields)
        super().append(item)
        self._owner._touch()
        return item

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            super().__setitem__(index, [self._value(v) for v in value])
        else:
            super().__setitem__(index, self._value(value))
        self._owner._touch()


class Map(dict):  # type: ignore[type-arg]
    """A map field: string keys (all engine.v1 maps), scalar or message values."""

    def __init__(self, owner: Message, field: Field, items: Any = None) -> None:
        super().__init__()
        self._owner = owner
        self._field = field
        if items:
            self.update(items)

    def _value(self, value: Any) -> Any:
        if self._field.message:
            cls = message_class(self._field.message)
            return cls(**value) if isinstance(value, dict) else value
        return _check(self._field, value)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, self._value(value))
        self._owner._touch()

    def __missing__(self, key: Any) -> Any:
        # as generated maps do: reading an absent key inserts its default
        value = message_class(self._field.message)() if self._field.message \
            else _default(self._field.type)
        self[key] = value
        return value

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


# ------------------------------------------------------------------ messages


class Message:
    """One engine.v1 message; subclasses are made from the schema by message_class()."""

    # underscored: engine.v1 has fields named "fields"
    _full_name = ""
    _fields: dict[str, Field] = {}
    _by_number: dict[int, Field] = {}
    _ordered: tuple[Field, ...] = ()

    def __init__(self, **values: Any) -> None:
        # The field values live in the instance's own __dict__, so reading a set field is
        # a plain attribute lookup; __getattr__ runs only for unset ones (their defaults).
        # `ps` of 1000 containers read ~10,000 fields through __getattr__ (~5 ms). The
        # dict also holds these three underscored entries: no field name starts with "_".
        object.__setattr__(self, "_values", self.__dict__)
        object.__setattr__(self, "_present", set())
        object.__setattr__(self, "_owner", None)
        for name, value in values.items():
            if value is None:
                continue
            field = self._field(name)
            if field.label == REPEATED:
                self._values[name] = Repeated(self, field, value)
            elif field.label == MAP:
                self._values[name] = Map(self, field, value)
            elif field.type == MESSAGE:
                child = getattr(self, name)
                child.CopyFrom(value if isinstance(value, Message)
                               else message_class(field.message or "")(**value))
            else:
                setattr(self, name, value)

    def _field(self, name: str) -> Field:
        try:
            return self._fields[name]
        except KeyError:
            raise ValueError(f'Protocol message {type(self).__name__} has no "{name}" '
                             f"field.") from None

    def _touch(self) -> None:
        """Something below changed: this message is present in its parent."""
        owner = self._owner
        if owner is not None:
            parent, field = owner
            parent._set_present(field)
            parent._touch()

    def _set_present(self, field: Field) -> None:
        if field.oneof:
            for other in self._fields.values():
                if other.oneof == field.oneof and other is not field:
                    self._present.discard(other.name)
                    self._values.pop(other.name, None)
        self._present.add(field.name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        field = self._fields.get(name)
        if field is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        values = self._values
        if name in values:
            return values[name]
        if field.label == REPEATED:
            value: Any = Repeated(self, field)
        elif field.label == MAP:
            value = Map(self, field)
        elif field.type == MESSAGE:
            value = message_class(field.message or "")()
            object.__setattr__(value, "_owner", (self, field))
        else:
            return _default(field.type)
        values[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        field = self._field(name)
        if field.label in (REPEATED, MAP):
            raise AttributeError(f"Assignment not allowed to repeated field \"{name}\" in "
                                 f"protocol message object.")
        if field.type == MESSAGE:
            raise AttributeError(f"Assignment not allowed to field \"{name}\" in protocol "
                                 f"message object.")
        self._values[name] = _check(field, value)
        if field.has_presence or field.oneof:
            self._set_present(field)
        self._touch()

    # -- the generated classes' API

    def HasField(self, name: str) -> bool:  # noqa: N802 - protobuf's name
        field = self._field(name) if name in self._fields else None
        if field is None:
            if any(f.oneof == name for f in self._fields.values()):
                return self.WhichOneof(name) is not None
            raise ValueError(f'Protocol message has no "{name}" field.')
        if not (field.has_presence or field.oneof):
            raise ValueError(f'Can\'t test non-optional, non-submessage field "{name}".')
        return name in self._present

    def WhichOneof(self, group: str) -> str | None:  # noqa: N802
        for field in self._fields.values():
            if field.oneof == group and field.name in self._present:
                return field.name
        if not any(f.oneof == group for f in self._fields.values()):
            raise ValueError(f'Protocol message has no oneof "{group}" field.')
        return None

    def ClearField(self, name: str) -> None:  # noqa: N802
        self._field(name)
        self._values.pop(name, None)
        self._present.discard(name)

    def CopyFrom(self, other: Message) -> None:  # noqa: N802
        if other is self:
            return
        self._clear()
        self.MergeFromString(other.SerializeToString())
        self._touch()

    def MergeFromString(self, data: bytes) -> int:  # noqa: N802
        raw = bytes(data)
        _decode(self, raw, 0, len(raw))
        return len(raw)

    def ParseFromString(self, data: bytes) -> int:  # noqa: N802
        self._clear()
        return self.MergeFromString(data)

    def _clear(self) -> None:
        """Every field back to its default (the underscored entries stay)."""
        for name in self._fields:
            self._values.pop(name, None)
        self._present.clear()

    @classmethod
    def FromString(cls, data: bytes) -> Message:  # noqa: N802
        msg = cls()
        msg.MergeFromString(data)
        return msg

    def SerializeToString(self, **_options: Any) -> bytes:  # noqa: N802
        out = bytearray()
        _encode(self, out)
        return bytes(out)

    def ByteSize(self) -> int:  # noqa: N802
        return len(self.SerializeToString())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message) or other._full_name != self._full_name:
            return NotImplemented
        return self.SerializeToString() == other.SerializeToString()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the generated classes

    def __repr__(self) -> str:
        shown = []
        for field in self._fields.values():
            if field.name in self._values and (self._is_set(field)):
                shown.append(f"{field.name}={self._values[field.name]!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def _is_set(self, field: Field) -> bool:
        """Whether the field is written on the wire."""
        if field.has_presence or field.oneof:
            return field.name in self._present
        value = self._values.get(field.name)
        return bool(value)


_classes: dict[str, type[Message]] = {}


def message_class(full_name: str) -> type[Message]:
    cls = _classes.get(full_name)
    if cls is None:
        try:
            spec = MESSAGES[full_name]
        except KeyError:
            raise AttributeError(f"no message {full_name}") from None
        fields = {f[0]: Field(*f) for f in spec}
        cls = type(full_name.rpartition(".")[2], (Message,), {
            "_full_name": full_name, "_fields": fields,
            "_by_number": {f.number: f for f in fields.values()},
            "_ordered": tuple(sorted(fields.values(), key=lambda f: f.number)),
            "__slots__": ()})
        _classes[full_name] = cls
    return cls


class _Package:
    """``engine.CreateContainerRequest`` -> the class of muelle.engine.v1.CreateContainerRequest."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def __getattr__(self, name: str) -> type[Message]:
        if name.startswith("_"):
            raise AttributeError(name)
        return message_class(self._prefix + name)


engine = _Package("muelle.engine.v1.")
types = _Package("muelle.types.v1.")


def method_types(method: str) -> tuple[type[Message], type[Message]]:
    """(request class, response class) of an Engine method."""
    request, response = METHODS[method]
    return message_class(request), message_class(response)


def method_path(method: str) -> str:
    return f"/{SERVICE}/{method}"


# ------------------------------------------------------------------ wire format


def _varint(value: int, out: bytearray) -> None:
    if value < 0:
        value += 1 << 64
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _scalar(field: Field, value: Any, out: bytearray) -> None:
    """The value alone (no tag)."""
    t = field.type
    if t in VARINT_TYPES:
        if t in (SINT32, SINT64):
            value = (value << 1) ^ (value >> 63)
        _varint(int(value), out)
    elif t in (STRING, BYTES):
        raw = value.encode() if t == STRING else value
        _varint(len(raw), out)
        out += raw
    else:
        out += struct.pack(FIXED[t], value)


def _wire_type(ftype: int) -> int:
    if ftype in VARINT_TYPES:
        return 0
    if ftype in (FIXED64, SFIXED64, DOUBLE):
        return 1
    if ftype in (FIXED32, SFIXED32, FLOAT):
        return 5
    return 2


def _tagged(field: Field, value: Any, out: bytearray) -> None:
    if field.type == MESSAGE:
        body = value.SerializeToString()
        _varint(field.number << 3 | 2, out)
        _varint(len(body), out)
        out += body
    else:
        _varint(field.number << 3 | _wire_type(field.type), out)
        _scalar(field, value, out)


def _encode(msg: Message, out: bytearray) -> None:
    values = msg._values
    for field in msg._ordered:
        if field.name not in values:
            continue
        value = values[field.name]
        if field.label == REPEATED:
            if not value:
                continue
            if field.type not in (STRING, BYTES, MESSAGE):  # proto3 packs numbers
                body = bytearray()
                for item in value:
                    _scalar(field, item, body)
                _varint(field.number << 3 | 2, out)
                _varint(len(body), out)
                out += body
            else:
                for item in value:
                    _tagged(field, item, out)
        elif field.label == MAP:
            key_field = Field("key", 1, STRING, SINGULAR, None, None)
            value_field = Field("value", 2, MESSAGE if field.message else field.type,
                                SINGULAR, field.message, None)
            for key, item in value.items():
                entry = bytearray()
                _tagged(key_field, key, entry)
                _tagged(value_field, item, entry)
                _varint(field.number << 3 | 2, out)
                _varint(len(entry), out)
                out += entry
        elif msg._is_set(field):
            _tagged(field, value, out)


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


def _from_varint(ftype: int, raw: int) -> Any:
    if ftype == BOOL:
        return bool(raw)
    if ftype in (INT32, ENUM):
        raw &= 0xFFFFFFFF
        return raw - (1 << 32) if raw >= 1 << 31 else raw
    if ftype == INT64:
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if ftype == UINT32:
        return raw & 0xFFFFFFFF
    if ftype in (SINT32, SINT64):
        return (raw >> 1) ^ -(raw & 1)
    return raw


def _skip(data: bytes, pos: int, end: int, wire: int) -> int:
    if wire == 0:
        return _read_varint(data, pos, end)[1]
    if wire == 2:
        size, pos = _read_varint(data, pos, end)
    elif wire in (1, 5):
        size = 8 if wire == 1 else 4
    else:
        raise DecodeError(f"unsupported wire type {wire}")
    if pos + size > end:
        raise DecodeError("truncated field")
    return pos + size


# What _decode does with a field's bytes, by the tag (number << 3 | wire type) it came
# with; a tag not in a class's plan (unknown, or not the wire type the schema says) is
# skipped, as protobuf keeps such bytes as unknown fields.
(STR, RAW, NUMBER, FIXED_NUMBER, SUB, ITEM_STR, ITEM_RAW, ITEM_NUMBER, ITEM_FIXED, ITEM_SUB,
 PACKED, ENTRY) = range(12)
Step = tuple[int, Field]
_LENGTH_DELIMITED = frozenset((STR, ITEM_STR, RAW, ITEM_RAW))
_TEXT = frozenset((STR, ITEM_STR))
_SINGULAR = frozenset((STR, RAW))
_NESTED = frozenset((SUB, ITEM_SUB, ENTRY))
_ITEMS = frozenset((ITEM_NUMBER, ITEM_FIXED))


def _plan(cls: type[Message]) -> dict[int, Step]:
    """The tag -> (action, field) table of ``cls``, made once per class: decoding 1000
    `ps` rows spent most of its time working this out again for every field."""
    plan: dict[int, Step] = {}
    for f in cls._fields.values():
        wire = _expected_wire(f)
        tag = f.number << 3 | wire
        if f.label == MAP:
            plan[tag] = (ENTRY, f)
        elif f.label == REPEATED:
            if f.type == MESSAGE:
                plan[tag] = (ITEM_SUB, f)
            elif f.type in (STRING, BYTES):
                plan[tag] = (ITEM_STR if f.type == STRING else ITEM_RAW, f)
            else:  # proto3 packs numbers; a sender may still write them one by one
                plan[tag] = (ITEM_NUMBER if wire == 0 else ITEM_FIXED, f)
                plan[f.number << 3 | 2] = (PACKED, f)
        elif f.type == MESSAGE:
            plan[tag] = (SUB, f)
        elif f.type in (STRING, BYTES):
            plan[tag] = (STR if f.type == STRING else RAW, f)
        else:
            plan[tag] = (NUMBER if wire == 0 else FIXED_NUMBER, f)
    return plan


def _expected_wire(field: Field) -> int:
    """The wire type of one value of ``field`` (a repeated number may come packed, 2)."""
    if field.label == MAP:
        return 2
    return _wire_type(field.type)


def _scalar_from(field: Field, wire: int, data: bytes, pos: int, end: int) -> tuple[Any, int]:
    """One value of a scalar field at ``pos``, and the position after it."""
    if wire == 0:
        raw, pos = _read_varint(data, pos, end)
        return _from_varint(field.type, raw), pos
    if wire == 2:
        size, pos = _read_varint(data, pos, end)
        if pos + size > end:
            raise DecodeError("truncated field")
        chunk = data[pos:pos + size]
        return (chunk.decode("utf-8", "replace") if field.type == STRING else chunk), pos + size
    size = 8 if wire == 1 else 4
    if pos + size > end:
        raise DecodeError("truncated field")
    return struct.unpack_from(FIXED[field.type], data, pos)[0], pos + size


def _decode(msg: Message, data: bytes, pos: int, end: int) -> None:
    """Merge the message in ``data[pos:end]`` into ``msg``."""
    cls = type(msg)
    plan = cls.__dict__.get("_plan")
    if plan is None:
        plan = _plan(cls)
        type.__setattr__(cls, "_plan", plan)
    values = msg._values
    while pos < end:
        key = data[pos]  # one byte for field numbers below 16, the usual case
        if key < 0x80:
            pos += 1
        else:
            key, pos = _read_varint(data, pos, end)
        step = plan.get(key)
        if step is None:
            pos = _skip(data, pos, end, key & 7)
            continue
        action, field = step
        if action in _LENGTH_DELIMITED:
            size = data[pos] if pos < end else 0x80
            if size < 0x80:
                pos += 1
            else:
                size, pos = _read_varint(data, pos, end)
            stop = pos + size
            if stop > end:
                raise DecodeError("truncated field")
            value: Any = data[pos:stop]
            if action in _TEXT:
                value = value.decode("utf-8", "replace")
            pos = stop
            if action in _SINGULAR:
                values[field.name] = value
                if field.label == OPTIONAL or field.oneof:
                    msg._set_present(field)
            else:
                list.append(getattr(msg, field.name), value)
        elif action in _NESTED:
            size, pos = _read_varint(data, pos, end)
            stop = pos + size
            if stop > end:
                raise DecodeError("truncated field")
            if action == ITEM_SUB:
                child = message_class(field.message or "")()
                _decode(child, data, pos, stop)
                list.append(getattr(msg, field.name), child)
            elif action == SUB:
                child = getattr(msg, field.name)
                _decode(child, data, pos, stop)  # a repeated occurrence merges, as protobuf
                object.__setattr__(child, "_owner", (msg, field))
                msg._set_present(field)
            else:
                _decode_entry(msg, field, data, pos, stop)
            pos = stop
        elif action == PACKED:
            size, pos = _read_varint(data, pos, end)
            stop = pos + size
            if stop > end:
                raise DecodeError("truncated field")
            target = getattr(msg, field.name)
            item_wire = _wire_type(field.type)
            while pos < stop:
                item, pos = _scalar_from(field, item_wire, data, pos, stop)
                list.append(target, item)
        elif action == NUMBER:  # inline: the bulk of a `stats` reply
            raw = data[pos] if pos < end else 0x80
            if raw < 0x80:
                pos += 1
            else:
                raw, pos = _read_varint(data, pos, end)
            values[field.name] = raw if field.type == UINT64 or (
                field.type == INT64 and raw < 1 << 63) else _from_varint(field.type, raw)
            if field.has_presence or field.oneof:
                msg._set_present(field)
        else:  # FIXED_NUMBER, ITEM_NUMBER, ITEM_FIXED
            value, pos = _scalar_from(field, key & 7, data, pos, end)
            if action in _ITEMS:
                list.append(getattr(msg, field.name), value)
            else:
                values[field.name] = value
                if field.has_presence or field.oneof:
                    msg._set_present(field)


def _decode_entry(msg: Message, field: Field, data: bytes, pos: int, end: int) -> None:
    """One map entry: key (1, a string) and value (2)."""
    entry_key, entry_value = "", None
    value_wire = 2 if field.message else _wire_type(field.type)
    key_field = Field("key", 1, STRING, SINGULAR, None, None)
    while pos < end:
        key, pos = _read_varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 1 and wire == 2:
            entry_key, pos = _scalar_from(key_field, 2, data, pos, end)
        elif number == 2 and wire == value_wire and field.message:
            size, pos = _read_varint(data, pos, end)
            if pos + size > end:
                raise DecodeError("truncated field")
            entry_value = message_class(field.message)()
            _decode(entry_value, data, pos, pos + size)
            pos += size
        elif number == 2 and wire == value_wire:
            entry_value, pos = _scalar_from(field, wire, data, pos, end)
        else:
            pos = _skip(data, pos, end, wire)
    if entry_value is None:
        entry_value = message_class(field.message)() if field.message \
            else _default(field.type)
    getattr(msg, field.name)[entry_key] = entry_value
