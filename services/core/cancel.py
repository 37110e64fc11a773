"""A cancellation signal handed down a long call (a pull) across threads and hops.

The gRPC edge sets it when the caller goes away (``context.add_callback``); code that
blocks on something other than the signal (a queue, a downstream stream) registers a
callback that unblocks it, e.g. the cancel of the next hop's call. Callbacks registered
after the signal was set run at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Cancel:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._callbacks: list[Callable[[], object]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._lock:
            if self._set:
                return
            self._set = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_set(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Run ``callback`` when the signal is set (now, if it is); returns a function
        that unregisters it (a finished download need not be cancelled)."""
        with self._lock:
            if not self._set:
                self._callbacks.append(callback)

                def forget() -> None:
                    with self._lock:
                        if callback in self._callbacks:
                            self._callbacks.remove(callback)

                return forget
        callback()
        return lambda: None
