"""Times as muelle writes and reads them (RFC 3339 with nanoseconds, like Docker's logs)
and as people read them ("3 seconds", "About a minute"). No third-party imports: the CLI
loads this before anything heavy."""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$")


def rfc3339_nano(ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds: 2026-11-28T17:00:00.123456789Z."""
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def now_rfc3339() -> str:
    return rfc3339_nano(time.time_ns())


# `ps` parses each container's created and started times on every call (the gateway's
# STATUS column, the Docker API's Created): the same strings each time, ~20 us apiece.
# A pure function; 8192 strings (~1.5 MB) cover a few thousand containers.
@functools.lru_cache(maxsize=8192)
def parse_ns(text: str) -> int:
    """RFC 3339 (any fraction) or Unix seconds ("1700000000.5") -> ns since the epoch.
    ValueError when it is neither."""
    fast = _utc_ns(text)
    if fast is not None:
        return fast
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d{1,9})?", text):
        whole, _, frac = text.partition(".")
        return int(whole) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"invalid time {text!r}: want RFC 3339 or Unix seconds")
    date, clock, frac, zone = m.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        base = datetime.fromisoformat(f"{date}T{clock}{zone}")
    except ValueError as exc:
        raise ValueError(f"invalid time {text!r}: {exc}") from None
    return int(base.timestamp()) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


@functools.lru_cache(maxsize=64)
def _day_ns(date: str) -> int:
    """Midnight UTC of a YYYY-MM-DD date, in ns; ValueError if there is no such day."""
    return int(datetime.fromisoformat(f"{date}T00:00:00+00:00").timestamp()) * 1_000_000_000


def _utc_ns(text: str) -> int | None:
    """parse_ns of the form muelle itself writes (rfc3339_nano: UTC, "Z"), without the
    regex and a datetime per call: a fresh CLI process parses every container's created
    time once for `ps` (1000 distinct strings, no cache hit), the gateway every start
    time. None for any other form (or an invalid one), which parse_ns reads the slow
    way; the same result either way (tests/unit/vocab/test_timefmt.py)."""
    if len(text) < 20 or text[-1] not in "Zz" or text[10] not in "Tt " \
            or text[13] != ":" or text[16] != ":":
        return None
    if text[4] != "-" or text[7] != "-":
        return None
    clock = text[11:13] + text[14:16] + text[17:19]
    frac = text[19:-1]
    if frac:
        if frac[0] != "." or not 2 <= len(frac) <= 10:
            return None
        frac = frac[1:]
    digits = text[:4] + text[5:7] + text[8:10] + clock + frac
    if not digits.isdigit() or not digits.isascii():
        return None
    hours, minutes, seconds = int(clock[:2]), int(clock[2:4]), int(clock[4:])
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    try:
        day = _day_ns(text[:10])
    except ValueError:
        return None
    return day + (hours * 3600 + minutes * 60 + seconds) * 1_000_000_000 \
        + int(frac.ljust(9, "0") if frac else 0)


def parse_seconds(text: str) -> float | None:
    """Seconds since the epoch, or None for an empty or unparseable time."""
    try:
        return parse_ns(text) / 1e9 if text else None
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration wording."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
             "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_go_duration(text: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms", "-2s", "0") in nanoseconds, as docker's
    --health-interval and the like read them. ValueError when it is not one."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    if body[:1] in ("-", "+"):
        body = body[1:]  # one sign only, as Go's
    if body == "0":
        return 0
    pos, total = 0, 0
    for m in _GO_DURATION.finditer(body):
        if m.start() != pos:
            break
        whole, _, frac = m.group(1).partition(".")
        unit = _GO_UNITS[m.group(2)]
        # integer arithmetic: "0.1s" is exactly 100000000 ns, as Go's
        total += int(whole or "0") * unit + int(frac or "0") * unit // 10 ** len(frac or "")
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def go_duration(ns: int) -> str:
    """Go's Duration.String(): "1.5s", "1m30s", "500ms", "1h0m0s", "0s"."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)

    def trimmed(value: int, scale: int) -> str:
        whole, frac = divmod(value, scale)
        digits = f"{frac:0{len(str(scale)) - 1}d}".rstrip("0") if frac else ""
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{trimmed(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{trimmed(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = trimmed(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds
