"""--sig-proxy (docker run/attach, default true): signals this CLI receives while it is
attached go to the container, so ctrl-c or a `kill` of the client reaches the process.

Each signal is sent by a short-lived thread with its own client: the main thread is inside
the attach stream's read, and the handler must not use that connection.

It uses `_signal`, the C module under `signal`: `signal` builds its enums at import, and
`enum` costs every `run` ~3 ms.
"""

from __future__ import annotations

import _signal

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

# Docker's ForwardAllSignals leaves these alone (and SIGKILL/SIGSTOP cannot be caught).
_SKIP = {_signal.SIGCHLD, _signal.SIGPIPE, _signal.SIGURG, _signal.SIGWINCH, _signal.SIGKILL,
         _signal.SIGSTOP}
_ALIASES = ("SIGIOT", "SIGPOLL", "SIGCLD")  # signal.Signals names these SIGABRT, SIGIO...


def names() -> dict[int, str]:
    """number -> name of each named signal (signal.Signals' names; no real-time ones)."""
    out: dict[int, str] = {}
    for name in dir(_signal):
        if name.startswith("SIG") and not name.startswith(("SIG_", "SIGRT")) \
                and name not in _ALIASES:
            out[getattr(_signal, name)] = name
    return out


class proxied:  # noqa: N801 - used as a function: `with proxied(...):`
    """While inside, forward each signal this process gets to the container (a class,
    not contextlib.contextmanager: contextlib costs every `run` ~4 ms to import)."""

    def __init__(self, host: str, container: str, enabled: bool = True) -> None:
        self.host = host
        self.container = container
        self.enabled = enabled
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        if not self.enabled:
            return
        known = names()

        def forward(signum: int, _frame: FrameType | None) -> None:
            import threading  # only when a signal comes: every `run` imports this module

            threading.Thread(target=_send, args=(self.host, self.container, known[signum]),
                             daemon=True).start()

        for sig in _signal.valid_signals():
            if sig in _SKIP or sig not in known:
                continue
            try:
                self.previous[sig] = _signal.signal(sig, forward)
            except (OSError, ValueError):
                continue

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self.previous.items():
            try:
                _signal.signal(sig, handler)
            except (OSError, ValueError, TypeError):
                continue
        self.previous.clear()


def _send(host: str, container: str, name: str) -> None:
    from clients.sdk.client import Client

    try:
        client = Client(host, lean=True)
        try:
            client.kill(container, name)
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - the container may be gone already
        pass
