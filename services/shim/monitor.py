"""The per-container monitor (like conmon): ``python -m services.shim.monitor ...``.

The shim spawns one per run of a container, in a new session, so it outlives the shim.
It becomes a child subreaper, runs ``<runtime> create`` with its own pipes as the
container's stdout/stderr, reports the outcome (init pid or error text) on the sync fd,
pumps the pipes into the json-file log, reaps the container's init when it exits, reads
the OOM-kill count from the memory cgroup before ``<runtime> delete`` removes it, and
records the exit status atomically in status.json.

It is a process per container, so it imports the stdlib and a few lean shim modules only:
no grpc, protobuf, structlog or configuration (tests/unit/shim/test_monitor_lean.py), and
the shim starts it with ``python -S``. It sleeps in the kernel (pidfds, pipes), not in
polls, so it notices ``create`` and the container exiting at once.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import functools
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.core.memfile import memfile
from services.runtime import api
from services.runtime.api import WarmChild, proc_start_time
from services.shim.console import ConsoleSocket
from services.shim.logs import LogWriter, rfc3339_nano
from services.shim.runtime_output import error_text
from services.shim.stdin import StdinRelay
from services.shim.store import ContainerDir, make_spare, write_json
from vocab.errors import is_no_space

# typing at run time is not needed here (annotations only); mypy treats TYPE_CHECKING
# as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PR_SET_CHILD_SUBREAPER = 36
CGROUP = Path("/sys/fs/cgroup")
# After init exits, wait this long for the pipes to reach EOF (detached writers).
DRAIN_GRACE = 2.0
# A container still running this long after its start is handed to the native tail
# (services/shim/native/muelle-monitor.c, built by make setup next to the interpreter):
# from then on its monitor costs ~0.1 MiB PSS instead of ~4.5 MiB. Shorter runs (run --rm
# of a command) end here, with the warm delete.
HANDOFF_AFTER = 1.0
NATIVE_TAIL = Path(sys.executable).parent / "muelle-monitor"

# A runtime command: the command line of an OCI runtime (runc, crun, a configured one),
# or, for muelle's own, a call of its library face run warm (api.Create, api.Delete).
Command = list[str] | api.Call


def command_argv(command: Command) -> list[str]:
    """A runtime command as a command line, for the native tail (which cannot make face
    calls): muelle's own face calls become its CLI's (muelle-runtime beside this Python)."""
    if isinstance(command, list):
        return command
    if isinstance(command, api.Delete):
        return [str(Path(sys.executable).parent / "muelle-runtime"), "--root", command.root,
                "delete", *(["--force"] if command.force else []), command.id]
    raise ValueError(f"no command line for {command!r}")


def decode_command(text: str) -> Command:
    """--create/--delete: a JSON list (a command line) or object (a face call)."""
    data = json.loads(text)
    if isinstance(data, list):
        return [str(a) for a in data]
    return api.decode(data)


def log(cdir: ContainerDir, msg: str) -> None:
    """A diagnostic line; lost, not fatal, when the disk is full."""
    with contextlib.suppress(OSError), open(cdir.monitor_log, "a") as f:
        f.write(f"{rfc3339_nano(time.time_ns())} {msg}\n")


def set_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def oom_killed(cgroups_path: str) -> bool:
    """Whether the OOM killer struck in the container's memory cgroup (v1 or v2)."""
    rel = cgroups_path.strip("/")
    for path, key in ((CGROUP / "memory" / rel / "memory.oom_control", "oom_kill"),
                      (CGROUP / rel / "memory.events", "oom_kill")):
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value) > 0
    return False


def pidfd(pid: int) -> int:
    """A pidfd that polls readable when ``pid`` exits, or -1 (kernel < 5.3): then poll."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return -1


def _drain_now(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    except BlockingIOError:
        pass
    os.set_blocking(fd, True)
    return b"".join(chunks)


def start_runtime(command: Command, stdout: int, stderr: int, cwd: str,
                  stdin: int = -1) -> subprocess.Popen[bytes] | WarmChild:
    """Start a runtime command: a face call forked warm, a command line exec'd.
    ``stdin`` (the container's, for ``create``) defaults to /dev/null."""
    with open(os.devnull, "rb") as devnull:
        stdin = stdin if stdin >= 0 else devnull.fileno()
        if not isinstance(command, list):
            return api.spawn(command, stdin, stdout, stderr, cwd)
        return subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd,
                                close_fds=True)


def run_delete(command: Command, cwd: str, here: bool = False) -> tuple[int, str]:
    """Run ``<runtime> delete``; returns (exit code, its stderr). ``here``: a face call
    runs in this process (one that exits next) rather than in one more fork."""
    if isinstance(command, list):
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd,
                                stdin=subprocess.DEVNULL, timeout=60, check=False)
        return result.returncode, result.stderr
    if here:
        return _delete_here(command, cwd)
    with memfile("runtime-delete-stderr") as err:
        proc = start_runtime(command, err.fileno(), err.fileno(), cwd)
        code = proc.wait()
        err.seek(0)
        return code, err.read().decode(errors="replace")


def _delete_here(call: api.Call, cwd: str) -> tuple[int, str]:
    with memfile("runtime-delete-stderr") as err:
        code, error = api.here(call, cwd, {1: err.fileno(), 2: err.fileno()})
        err.seek(0)
        return code, err.read().decode(errors="replace") + error


def _create_here(call: api.Call, cwd: str) -> tuple[int, str, int, int]:
    """run_create of a face call in this process: no fork of a warm runtime and no wait
    for its exit (~3 ms). The init gets the pipes as stdout and stderr, as from a forked
    create; what the runtime writes meanwhile is read back as its output."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    # Read while the runtime writes: a full pipe would block it, in our own process.
    reader = _Collector((out_r, err_r))
    try:
        code, error = api.here(call, cwd, {0: devnull, 1: out_w, 2: err_w})
    finally:
        for fd in (devnull, out_w, err_w):
            os.close(fd)
        output = reader.stop()
    output += _drain_now(out_r) + _drain_now(err_r)
    return code, output.decode(errors="replace") + error, out_r, err_r


class _Collector:
    """Reads ``fds`` on a thread into a buffer until ``stop()``, which returns it."""

    def __init__(self, fds: tuple[int, ...]) -> None:
        import threading  # the fork server loaded it

        self._fds = fds
        self._data = bytearray()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="create-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            for fd in (*self._fds, self._stop_r):
                sel.register(fd, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fd == self._stop_r:
                        return
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        self._data += chunk
                    else:
                        sel.unregister(key.fd)

    def stop(self) -> bytes:
        os.write(self._stop_w, b"x")
        self._thread.join()
        os.close(self._stop_r)
        os.close(self._stop_w)
        return bytes(self._data)


def _chowns_stdio(command: Command) -> bool:
    """Whether ``command`` runs crun (directly or through the cgroup wrapper)."""
    return isinstance(command, list) and any(os.path.basename(a) == "crun" for a in command)


def run_create(command: Command, cwd: str, stdin: int = -1,
               here: bool = False) -> tuple[int, str, int, int]:
    """Run ``<runtime> create``; returns (exit code, its output, stdout fd, stderr fd).
    ``here``: a face call runs in this process (no stdin, no terminal to hand over)
    instead of a fork of it."""
    if here and not isinstance(command, list):
        return _create_here(command, cwd)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    empty = -1
    if stdin < 0 and _chowns_stdio(command):
        # crun (1.8) hands the container's stdio to its root in a user namespace, /dev/null
        # too (runc skips it): the host's /dev/null became the remapped root's, for good.
        # An empty pipe reads as /dev/null does.
        empty, empty_w = os.pipe()
        os.close(empty_w)
        stdin = empty
    try:
        proc = start_runtime(command, out_w, err_w, cwd, stdin)
    except OSError as exc:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        return 127, str(exc), -1, -1
    finally:
        if empty >= 0:
            os.close(empty)
    os.close(out_w)
    os.close(err_w)
    # Until `start`, the container cannot write: everything here is the runtime's output.
    # The pipes stay open in the container's init, so create's exit is seen on its pidfd.
    output = bytearray()
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ)
    sel.register(err_r, selectors.EVENT_READ)
    exit_fd = pidfd(proc.pid)
    if exit_fd >= 0:
        sel.register(exit_fd, selectors.EVENT_READ)
    while proc.poll() is None:
        for key, _ in sel.select(timeout=0.05 if exit_fd < 0 else 1.0):
            if key.fd == exit_fd:
                continue
            data = os.read(key.fd, 65536)
            if data:
                output += data
            else:
                sel.unregister(key.fd)
    sel.close()
    if exit_fd >= 0:
        os.close(exit_fd)
    output += _drain_now(out_r) + _drain_now(err_r)
    code = proc.returncode if proc.returncode is not None else 255
    return code, output.decode(errors="replace"), out_r, err_r


class UnbufferedLogWriter(LogWriter):
    """Writes what came at once, a partial line too (docker attach streams raw bytes)."""

    def write(self, stream: str, data: bytes) -> None:
        super().write(stream, data)
        self.flush_partial()


def pump(writer: LogWriter, fds: dict[int, str], init_pid: int,
         deadline: float = 0.0) -> int | None:
    """Copy the pipes to the log until EOF; reap children. Returns init's wait status;
    None if init still runs at ``deadline`` (monotonic; 0: none): the pipes stay open, and
    ``fds`` holds those not at EOF yet."""
    sel = selectors.DefaultSelector()
    for fd in fds:
        sel.register(fd, selectors.EVENT_READ)
    pipes = len(fds)
    exit_fd = pidfd(init_pid)  # wakes us when init exits, even if a child keeps the pipes
    if exit_fd >= 0:
        sel.register(exit_fd, selectors.EVENT_READ)
    status: int | None = None
    exited_at = 0.0
    # Until both pipes reach EOF *and* init is reaped (either may come first).
    while pipes or status is None:
        events = sel.select(timeout=0.1 if pipes or exit_fd >= 0 else 0.01)
        for key, _ in events:
            fd = key.fd
            if fd == exit_fd:
                sel.unregister(fd)
                os.close(fd)
                exit_fd = -1
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:  # a pty master is non-blocking (stdin.attach_terminal)
                continue
            except OSError as exc:  # a pty master: EIO once every slave fd is closed
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if data:
                writer.write(fds[fd], data)
            else:
                sel.unregister(fd)
                os.close(fd)
                del fds[fd]  # what is left open goes to the native tail
                pipes -= 1
        got = reap(init_pid)
        if got is not None:
            status = got
        if status is None and not _alive(init_pid):
            status = -1  # not our child (should not happen with a subreaper): code unknown
        if status is None and deadline and time.monotonic() >= deadline:
            if exit_fd >= 0:
                os.close(exit_fd)
            sel.close()
            return None
        if status is not None:
            exited_at = exited_at or time.monotonic()
            if not events and time.monotonic() - exited_at > DRAIN_GRACE:
                break
    for key in list(sel.get_map().values()):
        os.close(key.fd)
    sel.close()
    return status


def reap(init_pid: int) -> int | None:
    """Reap every exited child; the wait status of init if it was among them."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == init_pid:
            found = status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def exit_code(status: int) -> int:
    if status < 0:
        return 255
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run(cdir: ContainerDir, create: Command, delete: Command,
        cgroups_path: str, sync_fd: int,
        log_limits: tuple[int, int] = (0, 1), relay: StdinRelay | None = None,
        console: ConsoleSocket | None = None) -> int:
    def report(data: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            os.write(sync_fd, json.dumps(data).encode() + b"\n")
        with contextlib.suppress(OSError):
            os.close(sync_fd)

    set_subreaper()
    for path, value in ((cdir.monitor_start, proc_start_time(os.getpid())),
                        (cdir.monitor_pid, os.getpid())):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(str(value))
        os.replace(tmp, path)
    with contextlib.suppress(FileNotFoundError):
        cdir.init_pid.unlink()
    # Room for status.json set aside now: a container that fills the disk still gets its
    # exit recorded (write_json writes into these blocks when it finds no others).
    make_spare(cdir.status_spare)
    code, output, out_fd, err_fd = run_create(create, str(cdir.path),
                                              relay.read_fd if relay else -1,
                                              here=relay is None and console is None)
    if relay is not None:
        relay.container_side_sent()
    pid = cdir.read_pid(cdir.init_pid) if code == 0 else 0
    master = -1
    if console is not None:
        if code == 0 and pid > 0:
            try:
                master = console.receive()
            except OSError as exc:
                code, output = 1, str(exc)
        console.close()
    if code != 0 or pid <= 0:
        text = error_text(output) if output.strip() else f"create exited with {code}"
        log(cdir, f"create failed: {text}")
        for fd in (out_fd, err_fd):
            if fd >= 0:
                os.close(fd)
        # Undo a half-made container; the runtime may have left state or a cgroup.
        if relay is not None:
            relay.close()
        run_delete(delete, str(cdir.path))
        reap(0)
        report({"error": text})
        return 1
    if output.strip():
        log(cdir, f"runtime said: {output.strip()}")
    report({"pid": pid})
    if relay is not None:
        relay.start()
    if relay is not None and master >= 0:
        relay.attach_terminal(master)
    # Someone types at it (-i, -t): a prompt must show before its line ends.
    writer = (UnbufferedLogWriter if relay is not None else LogWriter)(str(cdir.log),
                                                                        *log_limits)
    fds = {out_fd: "stdout", err_fd: "stderr"}
    if master >= 0:
        fds[master] = "stdout"  # a terminal has one stream, as docker logs it
    # All that is left to do (the log, stdin, the terminal, the exit) fits the native tail.
    tail = os.access(NATIVE_TAIL, os.X_OK)
    status = pump(writer, fds, pid, time.monotonic() + HANDOFF_AFTER if tail else 0.0)
    if status is None:
        # a terminal's pipes are at EOF by now (the runtime's output; init has the pty)
        out_fd, err_fd, master = (fd if fd in fds else -1 for fd in (out_fd, err_fd, master))
        writer = hand_over(cdir, writer, (out_fd, err_fd, master), pid, cgroups_path,
                           command_argv(delete), log_limits, relay)  # only if exec failed
        status = pump(writer, fds, pid)
    writer.close()
    if writer.dropped:
        log(cdir, f"dropped {writer.dropped} log entries: {writer.error}")
    if relay is not None:
        relay.close()
    oom = oom_killed(cgroups_path)  # before delete removes the cgroup
    # The exit is recorded before the runtime's delete (~10 ms), which a child does under
    # the delete lock: this monitor's exit tells the shim at once, and whoever removes or
    # restarts the container takes the lock first (ContainerDir.after_delete).
    lock_fd = os.open(cdir.delete_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    reap(0)
    write_json(cdir.status, {
        "pid": pid,
        "exit_code": exit_code(status if status is not None else -1),
        "oom_killed": oom,
        "finished_at": rfc3339_nano(time.time_ns()),
        "error": "" if status is not None and status >= 0 else "exit status lost",
    }, durable=False,  # a run --rm waits for this; the journal commits it within seconds
        spare=cdir.status_spare, what="the container's exit status")
    log(cdir, f"container exited, status {status}")
    try:
        child = os.fork()
    except OSError as exc:  # no process to spare (pids.max): delete before leaving
        log(cdir, f"fork for the delete failed ({exc}): deleting in the monitor")
        child = 0
        in_child = False
    else:
        in_child = child == 0
    if child == 0:
        try:  # the lock is this process's copy of lock_fd: released when it exits
            with contextlib.suppress(OSError):  # a full disk: the delete matters more
                os.ftruncate(lock_fd, 0)
                os.pwrite(lock_fd, str(os.getpid()).encode(), 0)  # after_delete may kill it
            delete_code, delete_err = run_delete(delete, str(cdir.path), here=in_child)
            if delete_code != 0:
                log(cdir, f"delete failed: {error_text(delete_err)}")
            reap(0)
        finally:
            if in_child:
                os._exit(0)
    os.close(lock_fd)
    return 0


def hand_over(cdir: ContainerDir, writer: LogWriter, fds: tuple[int, int, int], pid: int,
              cgroups_path: str, delete_argv: list[str], log_limits: tuple[int, int],
              relay: StdinRelay | None = None) -> LogWriter:
    """Exec the native tail, which goes on with this process's pid, session, subreaper
    role, children and pipes; ``fds``: the stdout and stderr pipes and the pty master (-1
    without a terminal). The stdin relay is frozen and its fds, the unfinished frame and
    the bytes not yet in stdin go on in the tail. Returns a new writer (the lines held are
    fed to it) only if the exec failed: then this monitor goes on itself."""
    out_fd, err_fd, master = fds
    if writer.dropped:
        log(cdir, f"dropped {writer.dropped} log entries: {writer.error}")
    partial = writer.hand_over()
    argv = [str(NATIVE_TAIL), "--dir", str(cdir.path), "--init-pid", str(pid),
            "--stdout-fd", str(out_fd), "--stderr-fd", str(err_fd), "--cgroup", cgroups_path,
            "--log-max-size", str(log_limits[0]), "--log-max-files", str(log_limits[1]),
            "--partial-stdout", partial["stdout"].hex(),
            "--partial-stderr", partial["stderr"].hex()]
    passed = [out_fd, err_fd]
    if master >= 0:
        argv += ["--master-fd", str(master)]
        passed.append(master)
    held = -1
    try:
        if relay is not None:
            state = relay.freeze()
            # The bytes the relay holds (a frame half read, stdin not read yet) can be
            # more than one argument may be (128 KiB): they go in a memfd.
            held = os.memfd_create("muelle-stdin-held", 0)
            os.write(held, state["inbuf"] + state["pending"])
            argv += ["--unbuffered", "--stdin-socket", relay.path,
                     "--stdin-listen-fd", str(state["listen"]),
                     "--stdin-conn-fd", str(state["conn"]), "--stdin-fd", str(state["stdin"]),
                     "--stdin-held-fd", str(held), "--stdin-inbuf-len", str(len(state["inbuf"])),
                     *(["--stdin-once"] if state["once"] else []),
                     *(["--stdin-close-after"] if state["close_after"] else [])]
            passed += [state["listen"], state["conn"], state["stdin"], held]
        for fd in passed:
            if fd >= 0:
                os.set_inheritable(fd, True)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.execv(NATIVE_TAIL, [*argv, "--", *delete_argv])
    except OSError as exc:
        log(cdir, f"native monitor tail not started ({exc}): monitoring on in Python")
    if held >= 0:
        os.close(held)
    if relay is not None:
        relay.thaw()
    writer = (UnbufferedLogWriter if relay is not None else LogWriter)(str(cdir.log),
                                                                        *log_limits)
    for stream, data in partial.items():
        writer.write(stream, data)
    return writer


@functools.cache
def parser() -> argparse.ArgumentParser:
    """Built once: the fork server builds it before forking, so a monitor starts without
    argparse's per-option work (~5 ms of a run)."""
    parser = argparse.ArgumentParser(prog="muelle-monitor")
    parser.add_argument("--dir", required=True, help="container dir")
    parser.add_argument("--create", required=True,
                        help="create: argv as a JSON list, or a runtime face call (object)")
    parser.add_argument("--delete", required=True, help="delete: the same")
    parser.add_argument("--cgroup", required=True, help="cgroupsPath of the container")
    parser.add_argument("--sync-fd", type=int, required=True)
    parser.add_argument("--log-max-size", type=int, default=0, help="rotate past (bytes)")
    parser.add_argument("--log-max-files", type=int, default=1, help="files kept")
    parser.add_argument("--stdin-socket", default="",
                        help="give the container a stdin pipe fed from this unix socket")
    parser.add_argument("--stdin-once", action="store_true",
                        help="close the container's stdin at the first client's EOF")
    parser.add_argument("--stdin-closed", action="store_true",
                        help="the socket only carries resizes (-t without -i)")
    parser.add_argument("--console-socket", default="",
                        help="receive the container's pty master here (a terminal)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    cdir = ContainerDir(Path(args.dir))
    try:
        terminal = bool(args.console_socket)
        relay = StdinRelay(args.stdin_socket, args.stdin_once, not args.stdin_closed,
                           terminal) if args.stdin_socket else None
        console = ConsoleSocket(args.console_socket) if terminal else None
        sys.exit(run(cdir, decode_command(args.create), decode_command(args.delete),
                     args.cgroup, args.sync_fd, (args.log_max_size, args.log_max_files),
                     relay, console))
    except Exception as exc:  # noqa: BLE001 - last resort: leave a trace for the shim
        log(cdir, f"monitor crashed: {type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError):
            # no_space: the shim's error is then ResourceExhausted, saying what
            os.write(args.sync_fd, json.dumps({"error": f"monitor: {exc}",
                                               "no_space": is_no_space(exc)}).encode())
        sys.exit(2)


if __name__ == "__main__":
    main()
