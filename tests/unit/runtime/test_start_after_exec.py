"""``start`` runs the poststart hooks only once the init has executed the user's program.

A stand-in init (a child process) answers start on exec.fifo as the real one does, then
holds off its execve until told: the hook must still see the executed program in
/proc/<pid>/exe (runtime-tools' poststart program saw the hook run first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from services.runtime.start import start
from services.runtime.store import State, Store, proc_start_time

HOOK = ("pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); "
        "readlink /proc/$pid/exe > \"$0\"")


# A subprocess, not os.fork: a forked child of this process (which may hold gRPC's atfork
# handlers from other tests) died once before its execve, leaving the hook a zombie's empty exe.
_INIT = """
import os, sys
fifo, go = sys.argv[1], int(sys.argv[2])
fd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)  # as init.py: open until execve
os.write(fd, b"0")
os.read(go, 1)
os.execv("/bin/sleep", ["sleep", "30"])
"""


def _stand_in_init(fifo: str, go: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-S", "-c", _INIT, str(fifo), str(go)],
                            pass_fds=(go,))


def test_poststart_hook_sees_the_executed_program(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    cid = "poststart-after-exec"
    cdir = Path(store.dir(cid))
    cdir.mkdir(parents=True)
    os.mkfifo(store.fifo(cid))
    seen = tmp_path / "exe"
    (cdir / "hooks.json").write_text(json.dumps({"hooks": {"poststart": [
        {"path": "/bin/sh", "args": ["sh", "-c", HOOK, str(seen)]}]}}))
    go_r, go_w = os.pipe()
    init = _stand_in_init(store.fifo(cid), go_r)
    pid = init.pid
    try:
        start_time = proc_start_time(pid)
        assert start_time is not None
        store.save(State(id=cid, bundle=str(tmp_path), pid=pid, start_time=start_time))
        thread = threading.Thread(target=start, args=(store, cid))
        thread.start()
        # Not a timing assertion: only a head start for a start() that would run the hook
        # before the execve. One that waits for it runs the hook after "go" either way.
        time.sleep(0.3)
        os.write(go_w, b"g")
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert seen.read_text().strip() == os.path.realpath("/bin/sleep")
    finally:
        init.kill()
        init.wait()
        for fd in (go_r, go_w):
            os.close(fd)
