"""``exec``: run one more process in a running container (runc's ``exec --process``).

    exec (subreaper) ──fork──> intermediate: join the init's cgroup, setns into every
                                namespace of /proc/<init>/ns the config lists
                        └──fork──> process: same setup as the init after pivot_root
                                   (cwd, PATH lookup, seccomp, bounding set, user, caps,
                                   no_new_privs), then execve
    The intermediate sends the process's host pid and exits; the process is re-parented
    to ``exec`` (a child subreaper), which waits for it in the foreground, forwards
    signals, and exits with its code (128+signal when killed), like ``runc exec``.
    A failure before execve is reported on a close-on-exec sync pipe: exit 1, no pid file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import termios
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from services.runtime import (
    apparmor,
    capabilities,
    cgroups,
    linux,
    namespaces,
    process,
    seccomp,
    sync,
)
from services.runtime.errors import NotRunning
from services.runtime.store import Store
from vocab.errors import FailedPrecondition, InvalidArgument, MuelleError

# setns order: user last. We run as the host's root, who may join any namespace; once in
# the container's user namespace we could no longer join those the host's user namespace
# owns (the network namespace the shim made). runc joins user first, for rootless callers.
ORDER = ("ipc", "uts", "network", "pid", "cgroup", "time", "mount", "user")
FORWARD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2, signal.SIGWINCH)
PROC_NS = {"mount": "mnt", "network": "net"}


def load_process(path: str) -> dict[str, Any]:
    try:
        proc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidArgument(f"process file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read process file {path}: {exc}") from None
    if not isinstance(proc, dict) or not isinstance(proc.get("args"), list) \
            or not proc["args"] or not all(isinstance(a, str) for a in proc["args"]):
        raise InvalidArgument("process.args must be a non-empty list of strings")
    if proc.get("capabilities") is not None:
        for names in proc["capabilities"].values():
            capabilities.mask(names)  # unknown capability -> InvalidArgument
    apparmor.check(proc.get("apparmorProfile"))
    return proc


def exec_(store: Store, cid: str, process_file: str, pid_file: str | None = None,
          detach: bool = False, console_socket: str | None = None) -> int:
    proc = load_process(process_file)
    state = store.load(cid)
    if store.status(state) != "running":
        raise NotRunning(f"cannot exec in a container that is not running: {cid}")
    config = json.loads((Path(state.bundle) / "config.json").read_text())
    linux_cfg = config.get("linux") or {}
    ns_paths = {}
    for ns in linux_cfg.get("namespaces") or []:
        kind = ns.get("type", "")
        if kind not in namespaces.FLAGS:
            continue
        ns_paths[kind] = f"/proc/{state.pid}/ns/{PROC_NS.get(kind, kind)}"
    console_fd = -1
    if proc.get("terminal"):
        if not console_socket:
            raise InvalidArgument("a terminal needs --console-socket")
        from services.runtime import console

        console_fd = console.connect(console_socket)
    profile = linux_cfg.get("seccomp")
    # Compiled here, in the host's mount namespace (libseccomp is the host's), cached as
    # create caches it; the process installs the bytes.
    bpf = seccomp.cached_bpf(profile, os.path.join(store.root, ".seccomp"), lambda msg: None) \
        if profile else None
    if not detach:
        linux.set_subreaper()
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        # Without a mount namespace the init chroot()ed (hostmounts.py): so do we.
        root = "" if "mount" in ns_paths else f"/proc/{state.pid}/root"
        _intermediate(w, state.cgroups_path, ns_paths, proc, bpf, console_fd, root)
    os.close(w)
    if console_fd >= 0:
        os.close(console_fd)
    pid, error = _read_verdict(r, child)
    if error:
        raise FailedPrecondition(error)
    if pid_file:
        tmp = Path(pid_file).with_name(f".{Path(pid_file).name}.tmp")
        tmp.write_text(str(pid))
        os.replace(tmp, pid_file)
    if detach:
        return 0
    return _wait(pid)


def _read_verdict(fd: int, child: int) -> tuple[int, str]:
    """(host pid, "") once the process exec'd (the pipe closed on exec), or (0, error)."""
    reader = sync.Reader(fd)
    pid, error = 0, ""
    try:
        while True:
            msg = reader.next()
            if msg is None:
                break
            if "pid" in msg:
                pid = int(msg["pid"])
            elif "error" in msg:
                error = str(msg["error"])
    finally:
        reader.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
    if not error and not pid:
        error = "exec: the process exited during setup"
    if error and pid:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.waitpid(pid, 0)  # it is our child now (subreaper); reap it
    return pid, error


def _wait(pid: int) -> int:
    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in FORWARD:
        signal.signal(sig, forward)
    try:
        while True:
            try:
                got, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 255
            if got == pid:
                if os.WIFSIGNALED(status):
                    return 128 + os.WTERMSIG(status)
                return os.WEXITSTATUS(status)
    finally:
        for sig in FORWARD:
            signal.signal(sig, signal.SIG_DFL)


def _intermediate(sync_fd: int, cgroups_path: str, ns_paths: dict[str, str],
                  proc: dict[str, Any], bpf: bytes | None,
                  console_fd: int = -1, root: str = "") -> NoReturn:
    try:
        # Non-dumpable before setns, as the init (create.py): until execve this is the
        # runtime's interpreter, which no container process may open through /proc.
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        fds = {}
        for kind in ORDER:  # open all first: joining mnt hides the host's /proc
            if kind in ns_paths:
                fds[kind] = os.open(ns_paths[kind], os.O_RDONLY | os.O_CLOEXEC)
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if root else -1
        if cgroups_path:
            cgroups.for_path(cgroups_path).join(os.getpid())
        for kind, fd in fds.items():
            linux.setns(fd, namespaces.FLAGS[kind])
            os.close(fd)
        if root_fd >= 0:
            os.fchdir(root_fd)
            os.chroot(".")
            os.close(root_fd)
        pid = os.fork()
        if pid == 0:
            _process(sync_fd, proc, bpf, console_fd)
        sync.send(sync_fd, pid=pid)
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - a forked child must never unwind
        with contextlib.suppress(BaseException):
            sync.send(sync_fd, error=_message(exc))
        os._exit(1)


def _close_all_but(*keep: int) -> None:
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}{' ' + str(exc.filename) if exc.filename else ''}"
    if isinstance(exc, MuelleError | ValueError | KeyError | TypeError):
        return str(exc)
    return f"exec: {type(exc).__name__}: {exc}"


def _process(sync_fd: int, proc: dict[str, Any], bpf: bytes | None,
             console_fd: int = -1) -> NoReturn:
    """In the container's namespaces: set up like the init, then execve (never returns)."""
    try:
        fcntl.fcntl(sync_fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
        # Nothing of the caller's but stdio from here on: a directory fd it leaked would
        # otherwise give the process a host cwd (cwd /proc/self/fd/N) or a host path.
        _close_all_but(sync_fd, console_fd)
        if proc.get("terminal"):
            os.setsid()
            if console_fd >= 0:  # a pty of the container's devpts, its master to the caller
                from services.runtime import console

                console.setup(console_fd, console=None, size=proc.get("consoleSize"))
            elif os.isatty(0):
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        process.set_rlimits(proc.get("rlimits") or [], lambda msg: None)
        env = process.env_dict(proc.get("env") or [])
        user = proc.get("user") or {}
        process.home(env, int(user.get("uid", 0)))
        process.chdir(proc.get("cwd") or "/", make=False)
        path = process.lookup(proc["args"][0], env)
        caps = proc.get("capabilities")
        nnp = bool(proc.get("noNewPrivileges"))
        apparmor.apply_on_exec(proc.get("apparmorProfile"))
        if bpf and not nnp:  # needs CAP_SYS_ADMIN: before the capabilities drop
            seccomp.install(bpf)
        if caps is not None:
            capabilities.drop_bounding(caps)
        process.switch_user(user)
        if caps is not None:
            capabilities.apply(caps)
        if nnp:
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
            if bpf:
                seccomp.install(bpf)
        _close_all_but(sync_fd)  # the console fd too: its pty is our stdio now
        process.default_signals()
        os.execve(path, list(proc["args"]), env)
    except BaseException as exc:  # noqa: BLE001
        with contextlib.suppress(BaseException):
            sync.send(sync_fd, error=_message(exc))
    os._exit(127)
