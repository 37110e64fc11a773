"""Sizes, durations and env values as docker's CLI reads and prints them."""

from __future__ import annotations

import time

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

_RAM = r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$"  # compiled when used: `re` costs ~4 ms
_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class UsageError(Exception):
    """Bad command-line input; shown as one line, nothing is sent to the engine."""


def parse_bytes(text: str, allow_unlimited: bool = False) -> int:
    """"64m", "1g", "512k", "1.5g", "1048576" -> bytes (binary units, like docker)."""
    if allow_unlimited and text.strip() == "-1":
        return -1
    import re

    m = re.match(_RAM, text.strip())
    if not m:
        raise UsageError(f"invalid size: {text!r}")
    return int(float(m.group(1)) * _BINARY[(m.group(2) or "").lower()])


def human_size(size: float) -> str:
    """Decimal units with 3 significant digits: "4.26MB" (docker's HumanSize)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


def human_binary(size: float) -> str:
    """Powers of 1024, as `docker info` prints memory: "23.47GiB"."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.4g}{unit}"
        size /= 1024
    return f"{size:.4g}TiB"


def ago(rfc3339: str, now: float | None = None) -> str:
    """"3 seconds ago" for an RFC 3339 time; "" when unknown."""
    from vocab.timefmt import human_duration, parse_seconds

    if not rfc3339:
        return ""
    when = parse_seconds(rfc3339)
    if when is None:
        return rfc3339
    now = time.time() if now is None else now
    return f"{human_duration(max(0.0, now - when))} ago"


def parse_env(values: list[str], environ: Mapping[str, str]) -> list[str]:
    """-e KEY=VAL as is; -e KEY copies KEY from the CLI's environment (dropped if unset)."""
    out = []
    for value in values:
        if "=" in value:
            if value.startswith("="):
                raise UsageError(f"invalid environment variable: {value}")
            out.append(value)
        elif value in environ:
            out.append(f"{value}={environ[value]}")
        elif not value:
            raise UsageError("invalid environment variable: empty name")
    return out


def parse_labels(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        key, _, val = value.partition("=")
        if not key:
            raise UsageError(f"invalid label: {value!r}")
        out[key] = val
    return out


INT64_MAX = (1 << 63) - 1


def int64(text: str) -> int:
    """An argparse type: an integer that fits the request's int64 fields (a bigger one
    would fail to encode, past the point where the CLI words errors). argparse names the
    function in its message: "invalid int64 value: '99999999999999999999'"."""
    value = int(text)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError(text)
    return value


def int32(text: str) -> int:
    """As int64, for the int32 fields (timeouts in seconds)."""
    value = int(text)
    if not -(1 << 31) <= value < 1 << 31:
        raise ValueError(text)
    return value


def duration(text: str) -> int:
    """An argparse type: a Go duration ("30s", "1m30s", "500ms") in nanoseconds, as
    docker's --health-* flags take them; argparse names it: "invalid duration value"."""
    from vocab.timefmt import parse_go_duration

    value = parse_go_duration(text)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError(text)
    return value


def parse_cpus(text: str) -> int:
    """--cpus 1.5 -> nano CPUs."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"invalid --cpus value {text!r}: want a number") from None
    # float() takes "nan" and "inf"; the engine refuses more CPUs than the host has.
    if value != value or not 0 <= value * 1e9 <= INT64_MAX:
        raise UsageError(f"invalid --cpus value {text!r}: want a number of CPUs, "
                         "at least 0")
    return round(value * 1e9)


def table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell plus 3 spaces and at least 10 wide: docker's
    tabwriter.NewWriter(out, 10, 1, 3, ' ', 0). Shorter rows are padded with empty cells."""
    if not rows:
        return ""
    n = max(len(r) for r in rows)
    rows = [r + [""] * (n - len(r)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(n)]
    lines = []
    for row in rows:
        cells = [cell.ljust(max(10, widths[i] + 3)) for i, cell in enumerate(row[:-1])]
        lines.append(("".join(cells) + row[-1]).rstrip())
    return "\n".join(lines) + "\n"
