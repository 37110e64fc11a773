"""``create``: set the container up with its init blocked before exec (runc's model).

    create ──fork──> intermediate: join cgroup, setns/unshare (incl. CLONE_NEWPID)
                        └──fork──> init (pid 1): setup, "ready", block on exec.fifo
    intermediate sends the init's host pid and exits, so the init is re-parented to the
    nearest child subreaper (the shim's monitor); create exits 0 once the init is ready.
"""

from __future__ import annotations

import os
import time
from _signal import SIGKILL

from services.runtime import (
    apparmor,
    cgroups,
    devices,
    hostmounts,
    init,
    linux,
    namespaces,
    process,
    seccomp,
    spec,
    sync,
    userns,
)
from services.runtime.log import get_logger
from services.runtime.scoped import suppress
from services.runtime.store import State, Store, proc_start_time
from vocab.errors import FailedPrecondition, MuelleError

# Nothing at run time from typing, collections, contextlib, json, pathlib or signal: a
# fresh process per container imports this (tests/unit/runtime/test_lean.py).
TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn


def create(store: Store, cid: str, bundle: str, pid_file: str | None = None,
           console_socket: str | None = None) -> State:
    log = get_logger(container=cid)
    bundle_path, config = spec.load(bundle)
    rootfs = spec.rootfs(bundle_path, config)
    linux_cfg = config.get("linux") or {}
    ns = namespaces.wanted(linux_cfg.get("namespaces") or [])
    userns.check(linux_cfg, ns)
    apparmor.check(config["process"].get("apparmorProfile"))
    if linux_cfg.get("seccomp"):
        seccomp.validate(linux_cfg["seccomp"])
    cgroup_path = cgroups.normalise(linux_cfg.get("cgroupsPath", ""), cid)

    cdir = store.reserve(cid)
    fifo = os.path.join(cdir, "exec.fifo")
    cgroup: cgroups.Cgroup | None = None
    pid = 0
    console_fd = fifo_fd = -1
    try:
        if console_socket and config["process"].get("terminal"):
            from services.runtime import console

            console_fd = console.connect(console_socket)
        if "mount" not in ns:
            hostmounts.record(cdir, str(rootfs))  # before the init mounts anything
        os.mkfifo(fifo, 0o622)
        user = config["process"].get("user") or {}
        os.chown(fifo, userns.to_host(linux_cfg, "uid", int(user.get("uid", 0))),
                 userns.to_host(linux_cfg, "gid", int(user.get("gid", 0))))
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        cgroup = cgroups.for_path(cgroup_path)
        resources = dict(linux_cfg.get("resources") or {})
        resources["devices"] = [*(resources.get("devices") or []), *devices.CGROUP_ALLOW]
        init_cfg = init.InitConfig(config, rootfs, ns, cgroup, fifo_fd, -1)
        init_cfg.container_id, init_cfg.bundle = cid, bundle_path
        if config.get("hooks"):
            import json

            from services.runtime import hooks

            # start and delete read them from here: config.json may change or go.
            with open(os.path.join(cdir, "hooks.json"), "w") as f:
                f.write(json.dumps(
                    {"hooks": config["hooks"], "ociVersion": config.get("ociVersion"),
                     "annotations": config.get("annotations") or {}}))
            init_cfg.wait_hooks = bool(hooks.of(config, *hooks.BEFORE_PIVOT,
                                                "startContainer"))
        if linux_cfg.get("seccomp"):
            init_cfg.seccomp_bpf = seccomp.cached_bpf(
                linux_cfg["seccomp"], os.path.join(store.root, ".seccomp"),
                lambda msg: log.warning("seccomp", detail=msg))
        init_cfg.console_fd = console_fd
        made = cgroup  # made by _spawn while the init sets up (mypy: not None in the lambda)
        pid = _spawn(init_cfg, lambda: made.create(resources))
        start_time = proc_start_time(pid)
        if start_time is None:
            raise FailedPrecondition("container init exited during setup")
        state = State(id=cid, bundle=bundle_path, pid=pid, start_time=start_time,
                      created=_now_iso(), cgroups_path=cgroup_path,
                      annotations=dict(config.get("annotations") or {}))
        store.save(state)
        if pid_file:
            _write_pid_file(pid_file, pid)
    except BaseException:
        _undo(store, cid, cgroup, pid)
        raise
    finally:
        for fd in (console_fd, fifo_fd):
            if fd >= 0:
                os.close(fd)
    log.info("created", pid=pid, bundle=bundle_path)
    return state


def _spawn(cfg: init.InitConfig, make_cgroup: Callable[[], None]) -> int:
    """Fork the intermediate and wait for the init's verdict; returns the init's host pid.

    The cgroup is made (``make_cgroup``) only once the intermediate is forked: its mkdir
    may wait out the grace period of a cgroup migration (cgroups.prime_migration), and the
    init meanwhile unshares and mounts what needs no cgroup (it waits for the join before
    the cgroup mount). If making it fails, closing our end of the ack pipe ends them."""
    r, w = os.pipe()
    ack_r, ack_w = os.pipe()  # create -> intermediate: "the user namespace is mapped"
    child = os.fork()
    if child == 0:
        os.close(r)
        os.close(ack_w)
        cfg.sync_fd = w
        cfg.ack_fd = ack_r
        _intermediate(cfg)
    os.close(w)
    os.close(ack_r)
    reader = sync.Reader(r)
    pid, ready, error = 0, False, ""
    hooks_wanted = False  # the init waits before pivot_root (it may ask before we know pid)
    try:
        make_cgroup()
        while True:
            if hooks_wanted and pid:
                hooks_wanted = False
                error = _runtime_hooks(cfg, pid, ack_w)
                if error:
                    break
            msg = reader.next()
            if msg is None:
                error = error or "container init exited during setup"
                break
            if msg.get("hooks"):
                hooks_wanted = True
            elif msg.get("userns"):
                try:
                    userns.write(child, cfg.spec.get("linux") or {})
                except OSError as exc:
                    error = f"writing the user namespace's id maps: {exc.strerror}"
                    break
                os.write(ack_w, b"1")
            elif "pid" in msg:
                pid = int(msg["pid"])
                error = _join_cgroup(cfg, pid, ack_w)
                if error or ready:
                    break
            elif "warn" in msg:
                get_logger().warning(str(msg["warn"]))
            elif "error" in msg:
                error = str(msg["error"])
                break
            elif msg.get("ready"):
                ready = True
                if pid:
                    break
    finally:
        os.close(ack_w)  # an intermediate still waiting for its maps reads EOF and exits
        reader.close()
        _reap(child)
    if error:
        if pid:
            with suppress(OSError):
                os.kill(pid, SIGKILL)
        raise FailedPrecondition(error)
    return pid


def _join_cgroup(cfg: init.InitConfig, pid: int, ack_w: int) -> str:
    """Move the init into its cgroup while it sets itself up (the kernel's first cgroup
    migration waits ~15 ms for an RCU grace period; the init's mounts take about as long),
    then tell it ("J"): it waits for that before anything can fork or run user code, and
    only then unshares its cgroup namespace, rooted at the new cgroup. "" or the error."""
    if cfg.cgroup is None:
        return ""
    try:
        cfg.cgroup.join(pid)
        os.write(ack_w, b"J")
    except (ProcessLookupError, BrokenPipeError):
        return ""  # the init already failed: its error (or EOF) follows on the sync pipe
    except OSError as exc:
        return f"cannot move the container into its cgroup: {exc.strerror}"
    return ""


def _intermediate(cfg: init.InitConfig) -> NoReturn:
    try:
        # Non-dumpable before joining anything (runc's nsexec does the same): until its
        # execve the init is this interpreter, and a container process must not open its
        # /proc/<pid>/exe, fds, cwd or memory. execve resets it for the user's program.
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        _close_all_but(cfg.sync_fd, cfg.ack_fd, cfg.fifo_fd, cfg.console_fd)
        oom = cfg.spec["process"].get("oomScoreAdj")
        if oom is not None:
            # Here, as the host's root: a non-dumpable process in a user namespace may not
            # write its own /proc files (they belong to the host's root). Inherited.
            process.oom_score_adj(int(oom), lambda msg: sync.send(cfg.sync_fd, warn=msg))
        # A new cgroup namespace waits for the init's move into its cgroup (_join_cgroup).
        namespaces.enter(cfg.namespaces, lambda: _await_maps(cfg),
                         later=("cgroup",) if cfg.cgroup is not None else ())
        pid = os.fork()
        if pid == 0:
            init.main(cfg)
        sync.send(cfg.sync_fd, pid=pid)
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - a forked child must never unwind
        with suppress(BaseException):
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, MuelleError | OSError):
                sync.send(cfg.sync_fd, error=f"{text}")
            else:
                sync.send(cfg.sync_fd, error=f"intermediate: {type(exc).__name__}: {text}")
        os._exit(1)


def _close_all_but(*keep: int) -> None:
    """Close every fd above 2 but ``keep`` (runc's default of no --preserve-fds): the
    container gets nothing of its creator's, even when create runs inside another
    program (the shim's monitor) instead of a process of its own."""
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _runtime_hooks(cfg: init.InitConfig, pid: int, ack_w: int) -> str:
    """prestart and createRuntime hooks, then the state for the init's own ("" or error)."""
    from services.runtime import hooks

    state = hooks.state(cfg.spec, cfg.container_id, "created", pid, cfg.bundle)
    try:
        hooks.run(hooks.of(cfg.spec, "prestart", "createRuntime"), state, cwd=cfg.bundle)
    except MuelleError as exc:
        return str(exc)
    import json

    os.write(ack_w, (json.dumps(state) + "\n").encode())
    return ""


def _await_maps(cfg: init.InitConfig) -> None:
    sync.send(cfg.sync_fd, userns=True)
    if os.read(cfg.ack_fd, 1) != b"1":
        raise FailedPrecondition("create did not map the user namespace")


def _reap(pid: int) -> None:
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _write_pid_file(path: str, pid: int) -> None:
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def _undo(store: Store, cid: str, cgroup: cgroups.Cgroup | None, pid: int) -> None:
    """A failed create leaves nothing behind: kill, empty and remove the cgroup, the dir."""
    if pid:
        with suppress(OSError):
            os.kill(pid, SIGKILL)
    if cgroup is not None:
        for _ in range(100):
            left = cgroup.pids()
            if not left:
                break
            for p in left:
                with suppress(OSError):
                    os.kill(p, SIGKILL)
            time.sleep(0.01)
        with suppress(OSError):
            cgroup.destroy()
    hostmounts.release(store.dir(cid))
    store.remove(cid)


def _now_iso() -> str:
    """datetime.now(UTC).isoformat() without datetime (~2 ms of every create's imports)."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}+00:00" if micros else f"{stamp}+00:00"
