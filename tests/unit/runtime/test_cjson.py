"""cjson (the runtime's JSON without the json package) answers as json does: the same
value, the same text, or the same error with the same message, on generated input."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.runtime import cjson

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30)


def _outcome(call: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    try:
        return "ok", repr(call(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the error is what is compared
        return type(exc).__name__, str(exc)


@settings(max_examples=400)
@given(VALUES, st.sampled_from([None, 0, 2]), st.sampled_from(["", " ", "\n\t ", "\r"]))
def test_loads_of_documents(value: Any, indent: int | None, pad: str) -> None:
    text = pad + json.dumps(value, indent=indent) + pad
    assert _outcome(cjson.loads, text) == _outcome(json.loads, text)
    raw = text.encode()
    assert _outcome(cjson.loads, raw) == _outcome(json.loads, raw)


@settings(max_examples=400)
@given(st.text() | st.sampled_from(['{"a": 1} x', '[1,]', '\ufeff{}', '{"a": NaN}',
                                    '"\\ud800"', '{"a": 1}{', '', ' ', '-', '1e999']))
def test_loads_of_anything(text: str) -> None:
    assert _outcome(cjson.loads, text) == _outcome(json.loads, text)


@settings(max_examples=300)
@given(st.binary() | st.sampled_from([b'\xef\xbb\xbf{}', b'\xff\xfe{\x00}\x00', b'{"a":\xff}',
                                      b'"\xed\xa0\x80"', b'1\x00', b'\x00']))
def test_loads_of_bytes(raw: bytes) -> None:
    assert _outcome(cjson.loads, raw) == _outcome(json.loads, raw)
    assert _outcome(cjson.loads, bytearray(raw)) == _outcome(json.loads, bytearray(raw))


@settings(max_examples=400)
@given(VALUES | st.tuples(SCALARS, SCALARS), st.booleans())
def test_dumps(value: Any, sort_keys: bool) -> None:
    assert _outcome(cjson.dumps, value, sort_keys=sort_keys) == \
        _outcome(json.dumps, value, sort_keys=sort_keys)


def test_dumps_refusals_and_default() -> None:
    odd: list[Any] = [{1, 2}, {"a": object}, {(1, 2): 3}, b"x", {1: 2, "1": 3}]
    for value in odd:
        assert _outcome(cjson.dumps, value) == _outcome(json.dumps, value)
        assert _outcome(cjson.dumps, value, default=str) == \
            _outcome(json.dumps, value, default=str)
    loop: list[Any] = []
    loop.append(loop)
    assert _outcome(cjson.dumps, loop) == _outcome(json.dumps, loop)
    mixed = {"b": 1, 2: "x"}
    assert _outcome(cjson.dumps, mixed, sort_keys=True) == \
        _outcome(json.dumps, mixed, sort_keys=True)


def test_state_and_config_shapes() -> None:
    """What the runtime reads and writes: state.json, sync lines, a config.json."""
    state = {"id": "c1", "bundle": "/b ü", "pid": 42, "start_time": 7, "created": "x",
             "cgroups_path": "/m/c1", "annotations": {"k": "v\n"}}
    assert cjson.dumps(state) == json.dumps(state)
    assert cjson.loads(json.dumps(state, indent=2)) == state
    assert cjson.loads(b'{"pid": 12}\n') == {"pid": 12}
