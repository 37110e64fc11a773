"""Exit codes and one-line messages for failures, the way docker's CLI reports them."""

from __future__ import annotations

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

ENGINE_ERROR = 125  # run/create: the engine refused
CANNOT_INVOKE = 126
NOT_FOUND = 127


def run_exit_code(message: str) -> int:
    """125, or 126/127 when the container's command could not be invoked/found."""
    text = message.lower()
    if "executable file not found" in text or "no such file or directory" in text:
        return NOT_FOUND
    if "permission denied" in text:
        return CANNOT_INVOKE
    return ENGINE_ERROR


def daemon_message(message: str) -> str:
    return f"Error response from daemon: {message}"


def cannot_connect(host: str) -> str:
    return f"Cannot connect to the muelle engine at {host}. Is it running?"


class RunFailed(Exception):
    """run/create failed in the engine; carries docker's exit code for it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def engine_call(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; engine refusals become RunFailed with 125/126/127."""
    from vocab.errors import MuelleError, Unavailable

    try:
        return fn()
    except Unavailable:
        raise
    except MuelleError as exc:
        raise RunFailed(str(exc), run_exit_code(str(exc))) from None


def engine_iter(stream: Any) -> Any:
    while True:
        try:
            item = engine_call(lambda: next(stream))
        except StopIteration:
            return
        yield item
