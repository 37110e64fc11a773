"""Exec: one more process in a running container, through ``<runtime> exec --process``.

The process.json starts from the container's own ``process`` in config.json, so it keeps
the container's capabilities, no_new_privs and rlimits (and the runtime applies the
container's seccomp profile and joins all its namespaces and its cgroup); args, env,
user, cwd are the request's. The runtime command runs in the foreground as a child of
the shim and exits with the process's code, as ``runc exec`` does. Its stderr is held
back until the pid file appears: before that it is the runtime's error, not output.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.shim import logs, users
from services.shim.console import ConsoleSocket, set_size
from services.shim.runtime_output import error_text
from services.shim.runtimes import Runtime
from services.shim.spec import check_workdir
from services.shim.store import ContainerDir, read_json, write_json
from vocab.errors import InvalidArgument

REPO = str(Path(__file__).resolve().parents[2])
# After the runtime exits, read what is left in the pipes this long at most (a
# background child of the process may hold them open forever).
DRAIN_GRACE = 0.5


@dataclass
class ExecRequest:
    args: list[str]
    env: list[str] = field(default_factory=list)
    user: str = ""
    cwd: str = ""
    stdin: bool = False
    tty: bool = False
    rows: int = 0  # initial terminal size, with tty
    cols: int = 0
    detach: bool = False  # exec -d: return once started, discard the output


@dataclass
class Output:
    stream: str
    data: bytes
    time: str


@dataclass
class Exit:
    exit_code: int
    error: str = ""


_NOT_FOUND = re.compile(r"not found|no such file or directory", re.IGNORECASE)
_NOT_EXECUTABLE = re.compile(r"permission denied|exec format error|is a directory",
                             re.IGNORECASE)


def failure_code(text: str) -> int:
    """Docker's exit codes for a process that could not start: 127 missing, else 126."""
    if _NOT_FOUND.search(text) and not _NOT_EXECUTABLE.search(text):
        return 127
    return 126


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Replace-or-append ``extra`` ("K=V") into ``base``, keeping base's order."""
    out = list(base)
    index = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    for entry in extra:
        key = entry.split("=", 1)[0]
        if not key or "=" not in entry:
            raise InvalidArgument(f"invalid environment variable: {entry!r}")
        if key in index:
            out[index[key]] = entry
        else:
            index[key] = len(out)
            out.append(entry)
    return out


def build_process(container: dict[str, Any], req: ExecRequest, rootfs: str) -> dict[str, Any]:
    """process.json for ``req``, from the container's config.json ``process``."""
    if not req.args or not req.args[0]:
        raise InvalidArgument("no command specified")
    proc = dict(container)
    proc["args"] = list(req.args)
    proc["terminal"] = req.tty
    proc.pop("consoleSize", None)
    if req.tty and req.rows and req.cols:
        proc["consoleSize"] = {"height": req.rows, "width": req.cols}
    env = list(proc.get("env") or [])
    if req.user:
        user = users.resolve(rootfs, req.user)
        proc["user"] = {"uid": user.uid, "gid": user.gid}
        if user.additional_gids:
            proc["user"]["additionalGids"] = list(user.additional_gids)
        env = merge_env(env, [f"HOME={user.home or '/'}"])
    proc["env"] = merge_env(env, req.env)
    if req.cwd:
        if not os.path.isabs(req.cwd):
            raise InvalidArgument(f"the working directory {req.cwd!r} is invalid: "
                                  "not absolute")
        check_workdir(rootfs, req.cwd)
        proc["cwd"] = req.cwd
    return proc


class ExecRun:
    """One exec'd process: start it, feed its stdin, yield its output, then its Exit."""

    def __init__(self, cdir: ContainerDir, runtime: Runtime, req: ExecRequest,
                 run_dir: str = "") -> None:
        config = read_json(cdir.config) or {}
        self.proc_spec = build_process(config.get("process") or {}, req, str(cdir.rootfs))
        self.cdir = cdir
        self.runtime = runtime
        self.req = req
        self.dir = cdir.path / "exec"
        self.name = uuid.uuid4().hex[:16]
        self.process_file = self.dir / f"{self.name}.json"
        self.pid_file = self.dir / f"{self.name}.pid"
        self.popen: subprocess.Popen[bytes] | None = None
        # With a terminal: the runtime sends the pty master to this socket (short path).
        self.console: ConsoleSocket | None = ConsoleSocket(
            os.path.join(run_dir or str(cdir.path), "io", f"x-{self.name}.console")) \
            if req.tty else None
        self.master = -1
        self.ready = threading.Event()  # stdin may flow (the master is known, if any)

    def start(self) -> None:
        self.dir.mkdir(exist_ok=True)
        write_json(self.process_file, self.proc_spec)
        argv = self.runtime.exec_argv(self.cdir.id, str(self.process_file), str(self.pid_file),
                                      self.console.path if self.console else "")
        env = None
        if self.console is not None:  # detached: a subreaper waits for the process
            argv = [sys.executable, "-S", "-m", "services.shim.exec_wait", str(self.pid_file),
                    *argv]
        elif self.req.detach:  # exec -d: its stdio must outlive this shim (exec_relay)
            argv = [sys.executable, "-S", "-m", "services.shim.exec_relay", *argv]
        if argv[0] == sys.executable:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p))
        try:
            self.popen = subprocess.Popen(
                argv, cwd=str(self.cdir.path), close_fds=True, env=env,
                start_new_session=self.req.detach,
                stdin=subprocess.PIPE if self.req.stdin and not self.req.tty
                else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            self.cleanup()
            raise InvalidArgument(f"{self.runtime.name} exec: {exc}") from None
        if self.console is None:
            self.ready.set()

    def _receive_master(self) -> None:
        """Wait for the pty master, or for the runtime to fail first."""
        assert self.console is not None and self.popen is not None
        try:
            while self.master < 0 and self.popen.poll() is None:
                with contextlib.suppress(OSError):
                    self.master = self.console.receive(timeout=0.2)
        finally:
            self.console.close()
            self.ready.set()

    def resize(self, rows: int, cols: int) -> None:
        if self.master >= 0:
            set_size(self.master, rows, cols)

    def write_stdin(self, data: bytes | None) -> None:
        """Bytes for the process's stdin; None closes it. Ignored without -i or once gone."""
        if self.master >= 0:
            if data and self.req.stdin:  # a terminal: typed into the pty
                with contextlib.suppress(OSError):
                    os.write(self.master, data)
            return
        if self.popen is None or self.popen.stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if data is None:
                self.popen.stdin.close()
            else:
                self.popen.stdin.write(data)
                self.popen.stdin.flush()

    def feed(self, chunks: Iterator[bytes | tuple[int, int] | None]) -> threading.Thread:
        """Copy ``chunks`` (None = EOF, (rows, cols) = resize) into stdin from a thread;
        EOF when they end."""
        def run() -> None:
            self.ready.wait()
            with contextlib.suppress(Exception):  # the client went away: just EOF
                for chunk in chunks:
                    if isinstance(chunk, tuple):
                        self.resize(*chunk)
                        continue
                    self.write_stdin(chunk)
                    if chunk is None:
                        return
            self.write_stdin(None)

        thread = threading.Thread(target=run, name=f"exec-stdin-{self.name}", daemon=True)
        thread.start()
        return thread

    def events(self, cancelled: Callable[[], bool] = lambda: False,
               ) -> Iterator[Output | Exit]:
        """Output as it comes, then the Exit. ``cancelled()`` (the client left) kills the
        process, as a pty hangup would."""
        popen = self.popen
        assert popen is not None and popen.stdout is not None and popen.stderr is not None
        if self.console is not None:
            self._receive_master()
        names = {popen.stdout.fileno(): "stdout", popen.stderr.fileno(): "stderr"}
        if self.master >= 0:
            names[self.master] = "stdout"
        # stderr (and a terminal's output) until the pid file shows the process started:
        # before that it is the runtime's error (crun writes it into the terminal).
        held: list[tuple[str, bytes]] = []
        started = False
        sel = selectors.DefaultSelector()
        for fd in names:
            sel.register(fd, selectors.EVENT_READ)
        exit_fd = _pidfd(popen.pid)
        if exit_fd >= 0:
            sel.register(exit_fd, selectors.EVENT_READ)
        exited_at = 0.0
        try:
            killed = False
            while len(sel.get_map()) > (1 if exit_fd >= 0 else 0):
                if not killed and cancelled():
                    killed = True
                    self.kill()
                if held and self.pid_file.exists():  # started: what waited is output
                    started = True
                    for stream, chunk in held:
                        yield Output(stream, chunk, _now())
                    held.clear()
                for key, _ in sel.select(timeout=0.1):
                    fd = key.fd
                    if fd == exit_fd:
                        sel.unregister(fd)
                        os.close(fd)
                        exit_fd = -1
                        continue
                    try:
                        data = os.read(fd, 65536)
                    except OSError:  # a pty master: EIO once the process is gone
                        data = b""
                    if not data:
                        sel.unregister(fd)
                        continue
                    started = started or self.pid_file.exists()
                    if not started and (names[fd] == "stderr" or fd == self.master):
                        held.append((names[fd], data))
                        continue
                    for stream, chunk in held:
                        yield Output(stream, chunk, _now())
                    held.clear()
                    yield Output(names[fd], data, _now())
                if popen.poll() is not None:
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > DRAIN_GRACE:
                        break
            code = popen.wait()
        finally:
            sel.close()
            if exit_fd >= 0:
                os.close(exit_fd)
        if not self.pid_file.exists():
            texts = [error_text(b"".join(d for s, d in held if s == stream).decode(
                errors="replace")) for stream in ("stderr", "stdout")]
            text = ": ".join(t for t in texts if t) or \
                f"{self.runtime.name} exec exited with {code}"
            yield Exit(failure_code(text), text)
            return
        for stream, chunk in held:
            yield Output(stream, chunk, _now())
        yield Exit(code if code >= 0 else 128 - code)

    def detached(self) -> Exit:
        """exec -d: Exit(0) once the process runs, or the Exit of one that could not start.

        A thread reads (and drops) its output until it ends, and waits for the runtime,
        which waits for the process: nothing is left unreaped. The output goes to pipes of
        this shim, so a process that writes after a shim restart gets SIGPIPE."""
        outcome: queue.Queue[Exit] = queue.Queue()

        def drain() -> None:
            try:
                for event in self.events():
                    if isinstance(event, Exit):
                        outcome.put(event)
            finally:
                self.cleanup()
                outcome.put(Exit(0))

        self.write_stdin(None)
        threading.Thread(target=drain, name=f"exec-detached-{self.name}", daemon=True).start()
        while True:
            try:
                ended = outcome.get(timeout=0.02)
            except queue.Empty:
                if self.pid_file.exists():
                    return Exit(0)
                continue
            return ended if ended.error else Exit(0)

    def kill(self) -> None:
        """The client left: signal the process (the runtime forwards it), then the runtime."""
        if self.popen is None or self.popen.poll() is not None:
            return
        pid = self.cdir.read_pid(self.pid_file)
        with contextlib.suppress(OSError):
            os.kill(pid if pid > 0 else self.popen.pid, signal.SIGKILL)

    def cleanup(self) -> None:
        if self.console is not None:
            self.console.close()
        if self.master >= 0:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = -1
        if self.popen is not None:
            for f in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
            if self.popen.poll() is None:
                self.popen.kill()
            self.popen.wait()
        for path in (self.process_file, self.pid_file):
            path.unlink(missing_ok=True)


def _pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return -1


def _now() -> str:
    return logs.rfc3339_nano(time.time_ns())


__all__ = ["ExecRequest", "ExecRun", "Exit", "Output", "build_process", "failure_code",
           "merge_env"]
