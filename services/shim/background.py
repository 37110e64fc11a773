"""One call run on a thread beside the caller's own work; its error surfaces at wait()."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Background:
    """``fn()`` started now on its own thread; ``wait()`` joins it and re-raises its error.

    For work that mostly waits in the kernel (netlink, RCU grace periods) while the caller
    waits on something else (the runtime's create, a cgroup removal)."""

    def __init__(self, fn: Callable[[], object], name: str) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the waiting thread
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


class Done(Background):
    """Nothing to run: wait() returns at once."""

    def __init__(self) -> None:  # no thread to start
        self._error = None

    def done(self) -> bool:
        return True

    def wait(self) -> None:
        return None
