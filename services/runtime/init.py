"""The container init: runs as pid 1 of the new pid namespace, sets up, waits, execs.

Order follows runc: mounts and devices, pivot_root, hostname, loopback, sysctls,
read-only and masked paths, rlimits, oom_score_adj, cwd, lookup of args[0], bounding set, user,
capabilities, no_new_privs; then "ready" to create, block on the exec fifo until
``start`` opens it, and exec. Any failure before "ready" goes back to create as text.
"""

from __future__ import annotations

import fcntl
import os
import termios

from services.runtime import apparmor, capabilities, devices, linux, process, rootfs, seccomp, sync
from services.runtime.cgroups import is_v2
from vocab.errors import MuelleError

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from services.runtime.cgroups import Cgroup


class InitConfig:
    """What create hands the forked init (a plain class: dataclasses costs ~10 ms to import)."""

    def __init__(self, spec: dict[str, Any], rootfs: str, namespaces: dict[str, str],
                 cgroup: Cgroup | None, fifo_fd: int, sync_fd: int) -> None:
        self.spec = spec
        self.rootfs = rootfs
        self.namespaces = namespaces
        self.cgroup = cgroup
        # exec.fifo as an O_PATH fd opened by create: in a user namespace the init may not
        # be allowed to walk the runtime's state dir.
        self.fifo_fd = fifo_fd
        self.sync_fd = sync_fd
        # linux.seccomp compiled by create (seccomp.cached_bpf); None: build it here.
        self.seccomp_bpf: bytes | None = None
        self.console_fd = -1  # --console-socket: make a pty, send its master there
        self.ack_fd = -1  # create -> us: "1" once the id maps are written; the hooks' state
        self.container_id = ""
        self.bundle = ""
        self.wait_hooks = False  # before pivot_root, wait for create's hooks (hooks.py)
        self.in_cgroup = cgroup is None  # create moves us into it meanwhile ("J" on ack_fd)


def main(cfg: InitConfig) -> NoReturn:
    """Never returns: execs the user process or exits non-zero."""
    try:
        ready = _setup(cfg)
    except (MuelleError, OSError, ValueError, KeyError, TypeError) as exc:
        _fail(cfg.sync_fd, _message(exc))
    except BaseException as exc:  # noqa: BLE001 - nothing may escape a forked child
        _fail(cfg.sync_fd, f"container init: {type(exc).__name__}: {exc}")
    try:
        sync.send(cfg.sync_fd, ready=True)
        os.close(cfg.sync_fd)
        # Blocks until `start` opens the fifo for reading (the fd is O_PATH: reopen it).
        fd = os.open(f"/proc/self/fd/{ready.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        if ready.hook_state is not None:
            _start_hooks(cfg, ready.hook_state, fd)
        os.write(fd, b"0")
        os.close(ready.fifo_fd)
        if ready.late_seccomp:
            # With no_new_privs the filter can wait until right before exec.
            _seccomp(cfg, ready.late_seccomp, lambda msg: None)
        # All but the fifo's write end: close-on-exec, it tells `start` that the execve
        # happened (start.py runs the poststart hooks on its EOF).
        os.closerange(3, fd)
        os.closerange(fd + 1, 65536)
        process.default_signals()
        os.execve(ready.path, ready.args, ready.env)
    except BaseException as exc:  # noqa: BLE001
        os.write(2, f"muelle-runtime: exec {ready.args[0]}: {_message(exc)}\n".encode())
    os._exit(127)


def _start_hooks(cfg: InitConfig, state: dict[str, Any], fifo: int) -> None:
    """startContainer hooks, in the container (paths resolve in its rootfs). A failure
    goes to `start` through the fifo ("E" + message) instead of the "0" that lets it on."""
    from services.runtime import hooks

    try:
        hooks.run(hooks.of(cfg.spec, "startContainer"), {**state, "status": "created"})
    except MuelleError as exc:
        os.write(fifo, b"E" + str(exc).encode()[:4000])
        os._exit(1)


def _seccomp(cfg: InitConfig, profile: dict[str, Any], warn: seccomp.Warn) -> None:
    if cfg.seccomp_bpf:
        seccomp.install(cfg.seccomp_bpf)
    else:
        seccomp.load(profile, warn)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename and str(exc.filename) not in str(
            exc.strerror) else ""
        return f"{exc.strerror}{where}"
    return str(exc)


def _fail(fd: int, message: str) -> NoReturn:
    try:
        sync.send(fd, error=message)
    finally:
        os._exit(1)


class Ready:
    """What the set-up leaves for the exec (a plain class: typing costs every create ~8 ms
    to import)."""

    def __init__(self, path: str, args: list[str], env: dict[str, str], fifo_fd: int,
                 late_seccomp: dict[str, Any] | None, hook_state: dict[str, Any] | None
                 ) -> None:
        self.path = path
        self.args = args
        self.env = env
        self.fifo_fd = fifo_fd
        self.late_seccomp = late_seccomp
        self.hook_state = hook_state  # set when there are hooks (startContainer's state)


def _setup(cfg: InitConfig) -> Ready:
    spec, ns = cfg.spec, cfg.namespaces
    proc: dict[str, Any] = spec["process"]
    linux_cfg: dict[str, Any] = spec.get("linux") or {}

    def warn(msg: str) -> None:
        sync.send(cfg.sync_fd, warn=msg)

    os.setsid()
    if proc.get("terminal") and cfg.console_fd < 0 and os.isatty(0):
        # The caller handed us a pty slave as stdio: make it our controlling terminal.
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    fifo_fd = cfg.fifo_fd
    if linux_cfg.get("seccomp") and not cfg.seccomp_bpf:
        seccomp.preload()

    if is_v2():
        _await_cgroup(cfg)  # the cgroup2 mount shows the cgroup namespace's root
    own_mnt = "mount" in ns  # else the host's mount table (hostmounts.py)
    if own_mnt:
        rootfs.prepare(cfg.rootfs, linux_cfg.get("rootfsPropagation", ""))
    else:
        rootfs.prepare_unshared(cfg.rootfs)
    mounts = spec.get("mounts") or []
    for m in mounts:
        if m.get("type") in ("cgroup", "cgroup2"):
            _await_cgroup(cfg)  # create makes the cgroup's directories as we get here
        rootfs.mount_one(cfg.rootfs, m, cfg.cgroup, warn)
    devices.create(cfg.rootfs, linux_cfg.get("devices") or [],
                   bool(proc.get("terminal")) and cfg.console_fd < 0)
    if cfg.wait_hooks:
        _await_cgroup(cfg)  # hooks are processes: they start in the container's cgroup
    hook_state = _before_pivot_hooks(cfg) if cfg.wait_hooks else None
    if own_mnt:
        rootfs.pivot(cfg.rootfs)
    else:
        rootfs.chroot(cfg.rootfs)
    if cfg.console_fd >= 0:
        from services.runtime import console

        console.setup(cfg.console_fd, size=proc.get("consoleSize"))
    os.umask(0o022)
    if (spec.get("root") or {}).get("readonly"):
        if proc.get("cwd"):  # as runc: the cwd is made before "/" turns read-only
            os.makedirs(proc["cwd"], exist_ok=True)
        rootfs.root_readonly()

    if "uts" in ns:
        if spec.get("hostname"):
            linux.sethostname(spec["hostname"])
        if spec.get("domainname"):
            linux.setdomainname(spec["domainname"])
    if ns.get("network") == "":
        linux.link_up("lo")
    for key, value in (linux_cfg.get("sysctl") or {}).items():
        if "/" in key or ".." in key:
            raise ValueError(f"invalid sysctl {key!r}")
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(str(value))
    # After the sysctls, as runc does: /proc/sys is one of the read-only paths.
    rootfs.readonly(linux_cfg.get("readonlyPaths") or [])
    rootfs.mask(linux_cfg.get("maskedPaths") or [])
    if linux_cfg.get("rootfsPropagation"):
        # Applied again on the new "/" (runc does too): before pivot_root it was the host's.
        # Last: the read-only paths are binds, which an (r)unbindable "/" would refuse.
        rootfs.propagate("/", linux_cfg["rootfsPropagation"])

    process.set_rlimits(proc.get("rlimits") or [], warn)

    env = process.env_dict(proc.get("env") or [])
    user = proc.get("user") or {}
    process.home(env, int(user.get("uid", 0)))
    process.chdir(proc.get("cwd") or "/")
    path = process.lookup(proc["args"][0], env)

    _await_cgroup(cfg)  # before seccomp and the dropped capabilities could refuse unshare
    caps = proc.get("capabilities")
    nnp = bool(proc.get("noNewPrivileges"))
    profile = linux_cfg.get("seccomp")
    # Without no_new_privs the filter needs CAP_SYS_ADMIN: load it before dropping caps.
    if profile and not nnp:
        _seccomp(cfg, profile, warn)
    apparmor.apply_on_exec(proc.get("apparmorProfile"))
    if caps is not None:
        capabilities.drop_bounding(caps)
    process.switch_user(user)
    if caps is not None:
        capabilities.apply(caps)
    if nnp:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    return Ready(path, list(proc["args"]), env, fifo_fd, profile if nnp else None,
                 hook_state)


def _await_cgroup(cfg: InitConfig) -> None:
    """Wait until create has moved us into the container's cgroup, then unshare a new
    cgroup namespace (rooted there). Nothing forks or runs user code before this."""
    if cfg.in_cgroup:
        return
    if os.read(cfg.ack_fd, 1) != b"J":
        raise MuelleError("create ended before the container joined its cgroup")
    cfg.in_cgroup = True
    if cfg.namespaces.get("cgroup") == "":
        linux.unshare(linux.CLONE_NEWCGROUP)


def _before_pivot_hooks(cfg: InitConfig) -> dict[str, Any]:
    """Ask create to run prestart/createRuntime, then run createContainer here (in the
    container's namespaces, the host's filesystem). The state is kept for startContainer."""
    import json

    from services.runtime import hooks

    sync.send(cfg.sync_fd, hooks=True)
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(cfg.ack_fd, 4096)
        if not chunk:
            raise MuelleError("create ended before the hooks ran")
        line += chunk
    state: dict[str, Any] = json.loads(line)
    hooks.run(hooks.of(cfg.spec, "createContainer"), state, cwd=cfg.bundle)
    return state
