"""Named locks: one lock per key (a digest, a chain ID), so concurrent pulls of the same
blob or layer serialise while different ones proceed in parallel."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vocab.errors import Cancelled

_POLL = 0.05  # how often a waiter that may give up asks whether it does


class KeyedLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str, give_up: Callable[[], bool] | None = None) -> Iterator[None]:
        """``give_up``: asked while the lock is taken by another; True raises Cancelled
        (a pull that ended need not wait for another pull's download of the same blob)."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            if give_up is None:
                lock.acquire()
            else:
                while not lock.acquire(timeout=_POLL):
                    if give_up():
                        raise Cancelled(f"gave up waiting for {key}")
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
