"""``run``: create + start, wait for the init, delete; exit with the container's code.

``run`` is the init's subreaper, so it can waitpid() it, and forwards the usual
termination signals to it.
"""

from __future__ import annotations

import os

# _signal, not signal: signal's IntEnums import enum (~3 ms of every run).
from _signal import SIG_DFL, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, signal

from services.runtime import linux
from services.runtime.create import create
from services.runtime.delete import delete
from services.runtime.scoped import suppress
from services.runtime.start import start
from services.runtime.store import Store

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from types import FrameType

FORWARD = (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run(store: Store, cid: str, bundle: str, pid_file: str | None = None,
        console_socket: str | None = None) -> int:
    linux.set_subreaper()
    state = create(store, cid, bundle, pid_file, console_socket)

    def forward(signum: int, _frame: FrameType | None) -> None:
        with suppress(ProcessLookupError):
            os.kill(state.pid, signum)

    try:
        for sig in FORWARD:
            signal(sig, forward)
        start(store, cid)
        code = 255
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == state.pid:
                code = exit_code(status)
                break
    finally:
        for sig in FORWARD:
            signal(sig, SIG_DFL)
        with suppress(Exception):
            delete(store, cid, force=True)
    return code
