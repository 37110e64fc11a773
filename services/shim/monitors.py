"""Monitor sync: the shim's side of the per-container monitors (monitor.py).

Start one for a run and read its report (the init's pid, or create's error), tell whether
it still lives (pid reuse guarded by its recorded start time), sleep on its pidfd until
the container stopped, and SIGKILL it with its process group when a container is undone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.core.config import Config
from services.runtime.api import proc_start_time
from services.shim import stdin as stdinmod
from services.shim.meta import Meta
from services.shim.runtimes import Runtime
from services.shim.spawner import Spawner
from services.shim.store import ContainerDir, pid_alive
from services.shim.waitfd import readable
from vocab.errors import FailedPrecondition, no_space

CREATE_TIMEOUT = 120.0
POLL = 0.02  # seconds between checks where no pidfd is at hand
WAKE = 0.25  # longest sleep on a monitor's pidfd before re-checking cancel and deadline
KILL_PATIENCE = 5.0  # seconds to wait for a SIGKILLed monitor to be gone

_CRUN_NOT_FOUND = re.compile(r"executable file `(.+?)` not found in \$PATH")


def exec_error(text: str) -> str:
    """One message for a missing executable whatever the runtime (runc's wording)."""
    m = _CRUN_NOT_FOUND.search(text)
    if m and "executable file not found" not in text:
        return f'exec: "{m.group(1)}": executable file not found in $PATH: {text}'
    return text


class Monitors:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.spawner = Spawner(cfg.run / "forkserver.log")

    def close(self) -> None:
        """Stop the fork server; the monitors keep running."""
        self.spawner.close()

    def spawn(self, cdir: ContainerDir, runtime: Runtime, meta: Meta) -> int:
        """Start a monitor for a new run; returns the init pid or raises the create error."""
        runtime.root.mkdir(parents=True, exist_ok=True)
        with cdir.after_delete():  # the last run's monitor may be deleting it still
            if runtime.may_know(cdir.id) and runtime.state(cdir.id) is not None:
                # left by a monitor that was killed
                runtime.delete(cdir.id, force=True)
        cdir.clear_run()
        read_fd, write_fd = os.pipe()
        terminal = meta.terminal
        console = stdinmod.socket_path(str(self.cfg.run), cdir.id, "console") \
            if terminal else ""
        stdin = meta.stdin
        argv = [
            *(["--stdin-socket", stdinmod.socket_path(str(self.cfg.run), cdir.id)]
              if stdin or terminal else []),
            *(["--stdin-once"] if stdin and stdin.get("once") else []),
            *(["--stdin-closed"] if terminal and not stdin else []),
            *(["--console-socket", console] if terminal else []),
            "--dir", str(cdir.path),
            "--create", runtime.create_command(cdir.id, str(cdir.path), str(cdir.init_pid),
                                               console),
            "--delete", runtime.delete_command(cdir.id, force=True),
            "--cgroup", meta.cgroups_path,
            *self._log_limits(meta),
        ]
        try:
            self.spawner.spawn(argv, write_fd, cdir.monitor_log)
            os.close(write_fd)
            write_fd = -1
            reply = read_sync(read_fd, CREATE_TIMEOUT)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        if "pid" in reply:
            return int(reply["pid"])
        if reply.get("no_space"):
            raise no_space(f"the files of container {cdir.id}'s monitor ({cdir.path})")
        error = exec_error(str(reply.get("error") or "the monitor exited without reporting"))
        if not reply:
            tail = cdir.monitor_log.read_text(errors="replace")[-2000:] \
                if cdir.monitor_log.exists() else ""
            error += f": {tail.strip()}" if tail.strip() else ""
        raise FailedPrecondition(error)

    def _log_limits(self, meta: Meta) -> list[str]:
        size = meta.log_max_size or self.cfg.shim.log_max_size
        files = meta.log_max_files or self.cfg.shim.log_max_files
        return ["--log-max-size", str(size), "--log-max-files", str(files)]

    @staticmethod
    def alive(cdir: ContainerDir) -> bool:
        pid = cdir.read_pid(cdir.monitor_pid)
        if not pid_alive(pid):
            return False
        # Guard against pid reuse: the monitor recorded its start time.
        recorded = cdir.read_pid(cdir.monitor_start)
        if recorded:
            return proc_start_time(pid) == recorded
        try:  # a monitor from before monitor.start: it names its dir on its command line
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(cdir.path).encode() in cmdline

    def pidfd(self, cdir: ContainerDir) -> int:
        """A pidfd of the container's live monitor, or -1 (none, or no pidfd support)."""
        pid = cdir.read_pid(cdir.monitor_pid)
        try:
            fd = os.pidfd_open(pid) if pid > 0 else -1
        except OSError:
            return -1
        if fd >= 0 and not self.alive(cdir):  # opened after a pid reuse
            os.close(fd)
            return -1
        return fd

    def stopped(self, cdir: ContainerDir) -> bool:
        """Cheap check for polling loops (no runtime call): exited or monitor gone."""
        return cdir.status.exists() or not cdir.path.exists() or not self.alive(cdir)

    def wait_stopped(self, cdir: ContainerDir, deadline: float | None,
                     cancelled: Callable[[], bool]) -> bool:
        # The monitor writes status.json, then exits: sleep on its pidfd rather than poll.
        # Waking every WAKE at most keeps `cancelled` and `deadline` honoured.
        exit_fd = self.pidfd(cdir)
        try:
            while not cancelled():
                if self.stopped(cdir):
                    return True
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return False
                if exit_fd < 0:
                    time.sleep(POLL)
                    continue
                left = WAKE if deadline is None else min(WAKE, deadline - now)
                if readable(exit_fd, left):
                    os.close(exit_fd)
                    exit_fd = -1  # exited: the next check sees it (or polls if not yet)
            return False
        finally:
            if exit_fd >= 0:
                os.close(exit_fd)

    def kill(self, cdir: ContainerDir) -> None:
        """SIGKILL the container's monitor and its process group (it leads one, in its own
        session): a `<runtime> create` it runs must not finish after the runtime's state
        was looked at. Waits until it is gone, so nothing of it races what follows."""
        if not self.alive(cdir):
            return
        pid = cdir.read_pid(cdir.monitor_pid)
        exit_fd = self.pidfd(cdir)
        try:
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            if exit_fd >= 0:
                readable(exit_fd, KILL_PATIENCE)
        finally:
            if exit_fd >= 0:
                os.close(exit_fd)


def read_sync(fd: int, timeout: float) -> dict[str, Any]:
    """The monitor's one-line JSON report on the sync pipe (an error dict on timeout)."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return {"error": "timed out waiting for the runtime to create the container"}
        if not readable(fd, left):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    try:
        reply = json.loads(data.decode(errors="replace").splitlines()[0]) if data else {}
    except (ValueError, IndexError):
        return {"error": f"garbled reply from monitor: {data[:200]!r}"}
    return reply if isinstance(reply, dict) else {}
