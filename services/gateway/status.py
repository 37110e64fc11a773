"""Times and docker-like human status text: "Up 3 seconds", "Exited (0) 2 minutes ago"."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_rfc3339() -> str:
    """Current time, RFC 3339 with nanoseconds (the shim's log time format)."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def parse_rfc3339(text: str) -> float | None:
    """Seconds since the epoch, or None for an empty or unparseable time."""
    if not text:
        return None
    text = text.strip().replace("z", "Z")
    main, _, zone = text.partition("Z")
    if "." in main:  # fromisoformat wants at most 6 fraction digits
        head, frac = main.split(".", 1)
        digits = "".join(c for c in frac if c.isdigit())
        rest = frac[len(digits):]
        main = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        stamp = datetime.fromisoformat(main + ("+00:00" if text.endswith("Z") else zone))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


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


def status_text(state: str, started_at: str, finished_at: str, exit_code: int,
                now: float | None = None) -> str:
    """The STATUS column of `ps` for a container in ``state``."""
    now = time.time() if now is None else now
    if state in ("running", "paused"):
        started = parse_rfc3339(started_at)
        text = "Up" if started is None else f"Up {human_duration(max(0.0, now - started))}"
        return text + " (Paused)" if state == "paused" else text
    if state == "exited":
        finished = parse_rfc3339(finished_at)
        if finished is None:
            return f"Exited ({exit_code})"
        return f"Exited ({exit_code}) {human_duration(max(0.0, now - finished))} ago"
    if state == "created":
        return "Created"
    return state.capitalize()
