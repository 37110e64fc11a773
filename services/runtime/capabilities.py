"""Linux capability names <-> numbers and applying a process.capabilities block."""

from __future__ import annotations

from services.core import capabilities as core_caps
from services.runtime import linux
from vocab.errors import InvalidArgument

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from typing import Any

NAMES = core_caps.ALL
_BY_NAME = {name: i for i, name in enumerate(NAMES)}


def number(name: str) -> int:
    """The number of a capability name (``CAP_`` prefix optional, any case)."""
    if not isinstance(name, str):
        raise InvalidArgument(f"capability {name!r} is not a string")
    key = name.upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    if key not in _BY_NAME:
        raise InvalidArgument(f"unknown capability {name!r}")
    return _BY_NAME[key]


def mask(names: list[str] | None) -> int:
    bits = 0
    for name in names or []:
        bits |= 1 << number(name)
    return bits


def drop_bounding(caps: dict[str, Any]) -> None:
    """Drop every capability not in the bounding set (needs CAP_SETPCAP: do it first)."""
    keep = mask(caps.get("bounding"))
    for cap in range(linux.last_cap() + 1):
        if not keep & (1 << cap) and linux.capbset_has(cap):
            linux.capbset_drop(cap)


def apply(caps: dict[str, Any]) -> None:
    """Set effective/permitted/inheritable, then raise the ambient set (after setuid).

    The kernel raises an ambient capability only if it is permitted and inheritable; one
    that is not is skipped, as runc and crun do (``runc spec``'s own config lists ambient
    capabilities that it leaves out of the inheritable set)."""
    permitted, inheritable = mask(caps.get("permitted")), mask(caps.get("inheritable"))
    linux.capset(mask(caps.get("effective")), permitted, inheritable)
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    for name in caps.get("ambient") or []:
        cap = number(name)
        if permitted & inheritable & (1 << cap):
            linux.ambient_raise(cap)
