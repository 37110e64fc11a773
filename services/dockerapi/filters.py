"""The ``filters`` query parameter of the list endpoints.

Clients send a JSON object of name -> list of values (``{"label":["a=b"]}``), older ones
name -> {value: true}; both are read as name -> list. A filter name the endpoint does not
know is a 400, as in dockerd.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from services.dockerapi.errors import bad_request

Filters = dict[str, list[str]]


def parse(text: str, known: Iterable[str]) -> Filters:
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise bad_request(f"invalid filters: {text!r} is not JSON") from None
    if not isinstance(raw, dict):
        raise bad_request("invalid filters: want a JSON object")
    out: Filters = {}
    allowed = set(known)
    for name, values in raw.items():
        if name not in allowed:
            raise bad_request(f"invalid filter '{name}'")
        if isinstance(values, dict):
            values = [k for k, on in values.items() if on]
        if not isinstance(values, list):
            raise bad_request(f"invalid filter '{name}': want a list of values")
        out[name] = [str(v) for v in values]
    return out


def labels_match(labels: Mapping[str, str], wanted: list[str]) -> bool:
    """Every ``key`` or ``key=value`` in ``wanted`` holds for ``labels``."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def flag(wanted: Filters, name: str) -> bool | None:
    """A boolean filter (``dangling``, ``all``): None when absent."""
    if not wanted.get(name):
        return None
    return wanted[name][-1].lower() in ("1", "true")
