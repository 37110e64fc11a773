"""The warm paths: a runtime call (``api.Create``/``api.Delete``) run in a forked child of
this process, or in this very process, instead of exec'ing ``muelle-runtime``.

The shim's monitors come warm from its fork server with the runtime's modules imported
(``api.preload``), so a fork costs ~1 ms where exec'ing ``muelle-runtime create`` costs an
interpreter start. The call is a typed value, run through the face (api.invoke): no
command line is built or parsed between the two. A forked child is what the CLI would be:
its own pid, stdio on the given fds, every other fd closed, exit 0 or 1 with the CLI's
one error line on stderr.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable


class WarmChild:
    """A forked runtime call; ``poll``/``wait``/``returncode`` as subprocess.Popen's."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (a subreaper's reap loop)
                self.returncode = 255
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            try:
                _pid, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                self.returncode = 255
        return self.returncode


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def spawn(run: Callable[[], None], describe: Callable[[BaseException], str],
          stdin: int, stdout: int, stderr: int, cwd: str) -> WarmChild:
    """Fork and ``run()`` in the child with the given stdio and cwd; an error is
    ``describe``d on its stderr and the child exits 1."""
    _flush()
    pid = os.fork()
    if pid:
        return WarmChild(pid)
    code = 1
    try:
        # Garbage from before the fork must not be collected here: a finalizer would close
        # an fd number the runtime may have reused by then.
        gc.freeze()
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.closerange(3, _max_fd())  # like exec with close_fds: the init inherits nothing
        os.chdir(cwd)
        try:
            run()
            code = 0
        except BaseException as exc:  # noqa: BLE001 - the CLI's one line, never a traceback
            with contextlib.suppress(OSError):
                os.write(2, (describe(exc) + "\n").encode())
    finally:
        _flush()
        os._exit(code)


def here(run: Callable[[], None], describe: Callable[[BaseException], str], cwd: str,
         fds: dict[int, int]) -> tuple[int, str]:
    """``run()`` in this process with ``fds`` (standard fd -> fd) in place, as a warm
    fork would have them (the init inherits them); cwd and the standard fds are restored.
    Returns (0, "") or (1, the error's line)."""
    _flush()
    saved = {fd: os.dup(fd) for fd in fds}
    home = os.getcwd()
    for fd, source in fds.items():
        os.dup2(source, fd)
    try:
        os.chdir(cwd)
        run()
        return 0, ""
    except Exception as exc:  # noqa: BLE001 - reported like the runtime's own error
        return 1, describe(exc)
    finally:
        _flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.chdir(home)


def _max_fd() -> int:
    try:
        return max(int(n) for n in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return os.sysconf("SC_OPEN_MAX")
