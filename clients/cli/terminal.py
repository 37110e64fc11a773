"""The CLI's terminal for `-t`: raw mode, its size, and SIGWINCH as a readable fd."""

from __future__ import annotations

import contextlib
import os
import signal
import termios
import tty
from collections.abc import Iterator


def size(fds: tuple[int, ...] = (1, 0, 2)) -> tuple[int, int] | None:
    """(rows, cols) of the first of ``fds`` that is a terminal."""
    for fd in fds:
        with contextlib.suppress(OSError):
            cols, rows = os.get_terminal_size(fd)
            if rows and cols:
                return rows, cols
    return None


@contextlib.contextmanager
def raw(fd: int = 0) -> Iterator[None]:
    """Raw mode on ``fd`` if it is a terminal (keys go to the container as typed, ctrl-c
    included); the old mode is restored on the way out."""
    if not os.isatty(fd):
        yield
        return
    old = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


class Winch:
    """A pipe that turns readable on SIGWINCH (the C handler writes into it, whatever
    the main thread is doing); read it with ``drain``."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        os.set_blocking(self._w, False)
        os.set_blocking(self.fd, False)
        self._old_fd = -1
        self._old_handler: object = None

    def __enter__(self) -> Winch:
        self._old_handler = signal.signal(signal.SIGWINCH, lambda *_: None)
        self._old_fd = signal.set_wakeup_fd(self._w)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.set_wakeup_fd(self._old_fd)
        signal.signal(signal.SIGWINCH, self._old_handler)  # type: ignore[arg-type]
        os.close(self._w)
        os.close(self.fd)

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 512):
                pass
