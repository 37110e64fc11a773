"""Times and docker-like human status text: "Up 3 seconds", "Exited (0) 2 minutes ago"."""

from __future__ import annotations

import time

from vocab.timefmt import human_duration, now_rfc3339
from vocab.timefmt import parse_seconds as parse_rfc3339

__all__ = ["human_duration", "now_rfc3339", "parse_rfc3339", "status_text"]


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
