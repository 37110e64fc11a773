"""Health checks in Docker's JSON: Config.Healthcheck (HealthConfig, durations in ns,
each zero field left out as Go's omitempty does) and State.Health. Shared by the Docker
API, muelle's CLI `inspect` and the image store's commit (an image config's
"Healthcheck"). Duck-typed over types.v1 Healthcheck and Health: nothing imported."""

from __future__ import annotations

from typing import Any


def healthcheck_json(hc: Any) -> dict[str, Any]:
    """{"Test": [...], "Interval": ns, "Timeout": ns, "StartPeriod": ns,
    "StartInterval": ns, "Retries": n}, the zero ones left out."""
    fields = (("Test", list(hc.test)), ("Interval", hc.interval_ns),
              ("Timeout", hc.timeout_ns), ("StartPeriod", hc.start_period_ns),
              ("StartInterval", hc.start_interval_ns), ("Retries", hc.retries))
    return {key: value for key, value in fields if value}


def health_json(h: Any) -> dict[str, Any]:
    """State.Health: the status, the failing streak, the last probes."""
    return {"Status": h.status, "FailingStreak": h.failing_streak,
            "Log": [{"Start": r.start, "End": r.end, "ExitCode": r.exit_code,
                     "Output": r.output} for r in h.log]}
