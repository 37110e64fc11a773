"""``python -S -m services.shim.exec_wait PID_FILE RUNTIME_ARGV...``: wait for a
detached exec.

runc and crun hand a console socket the pty master only for a detached exec
(``exec -d``): they then exit as soon as the process runs. This waiter is a child
subreaper, so the exec'd process is re-parented to it when the runtime exits; it waits
for that pid (from the pid file) and exits with its code (128+signal when killed), as
a foreground ``exec`` would. The runtime's own failure is its exit code and stderr.
Stdlib only, started with ``python -S``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from types import FrameType

PR_SET_CHILD_SUBREAPER = 36
FORWARD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2)


def main(argv: list[str]) -> int:
    pid_file, runtime_argv = argv[0], argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write("exec: cannot become a child subreaper\n")
        return 126
    code = subprocess.call(runtime_argv)
    if code != 0:
        return code
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        sys.stderr.write("exec: the runtime wrote no pid file\n")
        return 126

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in FORWARD:
        signal.signal(sig, forward)
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # not ours after all: its code is lost
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
