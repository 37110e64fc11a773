"""``json.loads`` and ``json.dumps`` through the C accelerator (``_json``) alone.

The ``json`` package imports ``re`` (and ``re`` imports ``enum``): ~6 ms of every
``muelle-runtime create``/``run`` on a small VM, a fresh process per container. Its
default decoder and encoder are the C scanner and encoder anyway; here they are built
with the very arguments ``json`` gives them, so an answer is ``json``'s answer. Anything
the fast path does not take as it is (an error, a BOM, another encoding, an object it
cannot encode) goes to the ``json`` package itself, so errors and their messages are
``json``'s too (tests/unit/runtime/test_cjson.py compares both on generated input).

Not after pivot_root: the fallback imports ``json`` from the host's stdlib.
"""

from __future__ import annotations

from _json import encode_basestring_ascii, make_encoder, make_scanner

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WS = " \t\n\r"  # json.decoder.WHITESPACE


_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What the C scanner reads off a JSONDecoder() with no arguments."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = make_scanner(_Context())  # type: ignore[arg-type]  # typeshed: any attribute bag


def loads(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)``."""
    s: str | None = None
    if isinstance(text, str):
        s = text
    elif isinstance(text, bytes | bytearray) and text and text[0] not in (0, 0xEF, 0xFE, 0xFF) \
            and (len(text) < 2 or text[1]):
        # json.detect_encoding says utf-8 for these (no BOM, no NUL of UTF-16/32).
        try:
            s = text.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            s = None
    if s is not None:
        start = len(s) - len(s.lstrip(_WS))
        try:
            obj, end = _scan(s, start)
        except (StopIteration, ValueError):
            pass
        else:
            if not s[end:].strip(_WS):
                return obj
    import json  # the error (and its message) exactly as json raises it

    return json.loads(text)


def dumps(obj: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
          ) -> str:
    """``json.dumps(obj, sort_keys=..., default=...)``."""
    if isinstance(obj, str):
        return str(encode_basestring_ascii(obj))  # JSONEncoder.encode's shortcut
    try:
        encode = make_encoder({}, default or _refuse, encode_basestring_ascii, None, ": ", ", ",
                              sort_keys, False, True)
        return "".join(encode(obj, 0))
    except (TypeError, ValueError, RecursionError):
        import json

        return json.dumps(obj, sort_keys=sort_keys, default=default)


def _refuse(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")
