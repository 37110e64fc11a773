"""The runtime's log: one logfmt or JSON line per event, to ``--log`` or stderr.

muelle-runtime runs as a fresh process three times per container (create, start, delete),
so it keeps to the stdlib: structlog's import alone cost it ~50 ms per call. The lines
look like the structlog ones the services write (``level=info event=created pid=42``),
with the bound keys (``container=``, ``cgroup=``) after the event.
"""

from __future__ import annotations

import sys
import time

from services.runtime import cjson

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from typing import IO, Any

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class _Sink:
    """Where lines go and which pass: set once by ``configure`` (main.py)."""

    level = LEVELS["warning"]
    json = False
    out: IO[str] | None = None  # None: sys.stderr at the time of writing


_sink = _Sink()


def configure(level: str = "warning", fmt: str = "text", out: IO[str] | None = None) -> None:
    _sink.level = LEVELS[level]
    _sink.json = fmt == "json"
    _sink.out = out


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else cjson.dumps(value, default=str)
    if text and not any(c in text for c in ' ="\\\n'):
        return text
    return cjson.dumps(text)


def render(level: str, event: str, fields: dict[str, Any], as_json: bool) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if as_json:
        return cjson.dumps({"event": event, **fields, "level": level, "time": now},
                           default=str)
    pairs = [("level", level), ("event", event), *fields.items(), ("time", now)]
    return " ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs)


class Logger:
    """A logger bound to the object acted on: ``get_logger(container=cid).info("created")``."""

    def __init__(self, bound: dict[str, Any]) -> None:
        self.bound = bound

    def bind(self, **more: Any) -> Logger:
        return Logger({**self.bound, **more})

    def _log(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if LEVELS[level] < _sink.level:
            return
        out = _sink.out or sys.stderr
        out.write(render(level, event, {**self.bound, **fields}, _sink.json) + "\n")
        out.flush()

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, fields)


def get_logger(**bound: Any) -> Logger:
    return Logger(bound)
