"""Run a ``muelle-runtime`` command line in a forked child of this process.

The monitor comes warm from the fork server with muelle-runtime's modules imported, so a
fork costs ~1 ms where exec'ing ``muelle-runtime create`` costs an interpreter start. The
child is the same process the CLI would be: its own pid, stdio on the given fds, every
other fd closed, the CLI's exit code and error line.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys


class WarmChild:
    """A forked runtime command; ``poll``/``wait``/``returncode`` as subprocess.Popen's."""

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


def spawn(argv: list[str], stdin: int, stdout: int, stderr: int, cwd: str) -> WarmChild:
    """Fork and run muelle-runtime's ``main(argv[1:])`` in the child (argv[0] is the
    binary, unused)."""
    from services.runtime import main as runtime_main

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
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
        runtime_main.main(argv[1:])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a forked child must never unwind
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _max_fd() -> int:
    try:
        return max(int(n) for n in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return os.sysconf("SC_OPEN_MAX")
