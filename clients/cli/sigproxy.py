"""--sig-proxy (docker run/attach, default true): signals this CLI receives while it is
attached go to the container, so ctrl-c or a `kill` of the client reaches the process.

Each signal is sent by a short-lived thread with its own client: the main thread is inside
the attach stream's read, and the handler must not use that connection.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

# Docker's ForwardAllSignals leaves these alone (and SIGKILL/SIGSTOP cannot be caught).
_SKIP = {signal.SIGCHLD, signal.SIGPIPE, signal.SIGURG, signal.SIGWINCH, signal.SIGKILL,
         signal.SIGSTOP}


@contextlib.contextmanager
def proxied(host: str, container: str, enabled: bool = True) -> Iterator[None]:
    if not enabled:
        yield
        return

    def forward(signum: int, _frame: FrameType | None) -> None:
        import threading  # only when a signal comes: every `run` imports this module

        name = signal.Signals(signum).name
        threading.Thread(target=_send, args=(host, container, name), daemon=True).start()

    previous = {}
    for sig in signal.valid_signals():
        if sig in _SKIP or not isinstance(sig, signal.Signals) or sig.name.startswith("SIGRT"):
            continue
        with contextlib.suppress(OSError, ValueError):
            previous[sig] = signal.signal(sig, forward)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, handler)


def _send(host: str, container: str, name: str) -> None:
    from clients.sdk.client import Client

    with contextlib.suppress(Exception):  # the container may be gone already
        client = Client(host, lean=True)
        try:
            client.kill(container, name)
        finally:
            client.close()
