"""structlog set-up shared by every service: JSON lines or console, to stderr."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(
    service: str, fmt: str = "console", level: str = "info"
) -> structlog.stdlib.BoundLogger:
    """Configure structlog once per process and return a logger bound to ``service``."""
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper())
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger().bind(service=service)  # type: ignore[no-any-return]


def get_logger(**bind: object) -> structlog.stdlib.BoundLogger:
    """A logger bound to the object acted on (image=..., container=..., digest=...)."""
    return structlog.get_logger().bind(**bind)  # type: ignore[no-any-return]
