"""``python -S -m services.shim.exec_relay RUNTIME_ARGV...``: the stdio of an ``exec -d``.

A detached exec's output is dropped, but the shim still reads it until the process has
started (before that it is the runtime's error). If the process wrote to pipes of the
shim it would die of SIGPIPE once the shim is killed or restarted. So the runtime's
stdout and stderr are pipes of this relay instead: it copies them to its own (the shim's
pipes) while they are open and then discards, and it exits with the runtime's code once
both end, so a running process never notices the shim going away. The shim starts it in
a session of its own. Stdlib only, started with ``python -S``.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys


def main(argv: list[str]) -> int:
    try:
        runtime = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
    except OSError as exc:
        sys.stderr.write(f"exec: {exc}\n")
        return 126
    assert runtime.stdout is not None and runtime.stderr is not None
    targets = {runtime.stdout.fileno(): 1, runtime.stderr.fileno(): 2}
    sel = selectors.DefaultSelector()
    for fd in targets:
        sel.register(fd, selectors.EVENT_READ)
    while sel.get_map():
        for key, _ in sel.select(timeout=0.5):
            fd = key.fd
            data = os.read(fd, 65536)
            if not data:
                sel.unregister(fd)
                continue
            if targets[fd] >= 0:
                try:
                    os.write(targets[fd], data)
                except OSError:  # the shim is gone (EPIPE): drop from now on
                    targets[fd] = -1
        runtime.poll()  # reap the runtime as soon as it ends (a child may hold the pipes)
    return runtime.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
