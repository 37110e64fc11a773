"""CPU and memory-node lists as cgroups take them ("0-3,6"): Docker's --cpuset-cpus and
--cpuset-mems. The gateway checks the form, the shim that its host has them (the CPUs
are the shim host's, not the gateway's)."""

from __future__ import annotations

from pathlib import Path

from vocab.errors import InvalidArgument

WHAT = {"cpus": "CPUs", "mems": "memory nodes"}
LIMIT = 8192  # the kernel's largest NR_CPUS; bigger numbers are typos, not hosts


def parse(text: str, kind: str) -> set[int]:
    """The numbers of a list like "0-2,5"; InvalidArgument as Docker words it."""
    found: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not _number(low) or (dash and not _number(high)):
            raise InvalidArgument(f"Invalid value {text} for cpuset {kind}")
        first, last = int(low), int(high) if dash else int(low)
        if last < first or last >= LIMIT:
            raise InvalidArgument(f"Invalid value {text} for cpuset {kind}")
        found.update(range(first, last + 1))
    return found


def online(kind: str, sys: Path = Path("/sys/devices/system")) -> str:
    """This host's online CPUs or memory nodes, as the kernel lists them."""
    path = sys / ("cpu" if kind == "cpus" else "node") / "online"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return "0"  # no NUMA support compiled in: one node


def check_available(text: str, kind: str, sys: Path = Path("/sys/devices/system")) -> None:
    have = online(kind, sys)
    if not parse(text, kind) <= parse(have, kind):
        raise InvalidArgument(f"Requested {WHAT[kind]} are not available - requested "
                              f"{text}, available: {have}")


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()
