"""The shim core: container lifecycle on this host, in plain Python (no gRPC here).

State lives only on disk (store.py) and in the monitors, so a restarted shim rediscovers
every container (live restore) by reading the container dirs back.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import select
import shutil
import signal as signalmod
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from muelle.runtime.v1 import runtime_pb2
from muelle.types.v1 import types_pb2

from services.core import modes
from services.core.config import Config
from services.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    MuelleError,
    NotFound,
    ResourceExhausted,
    no_space,
)
from services.core.logging import get_logger
from services.runtime import cgroups
from services.runtime.store import proc_start_time
from services.shim import (
    access,
    cgroupfs,
    copyin,
    logs,
    mounts,
    restart,
    spec,
    stats,
    users,
    volume_mounts,
)
from services.shim import stdin as stdinmod
from services.shim import userns as usernsmod
from services.shim.background import Background
from services.shim.claims import Claims
from services.shim.exec import ExecRequest, ExecRun, Exit, Output
from services.shim.exits import ExitWatch
from services.shim.host_devices import host_devices
from services.shim.network import Manager as NetworkManager
from services.shim.network import plan_config, request_of
from services.shim.network.manager import default_bridge
from services.shim.runtimes import Runtime, Runtimes
from services.shim.spawner import Spawner
from services.shim.store import ContainerDir, Store, pid_alive, read_json, write_json
from services.shim.volumes import VolumeStore

CREATE_TIMEOUT = 120.0
POLL = 0.02  # seconds between checks where no pidfd is at hand
WAKE = 0.25  # longest sleep on a monitor's pidfd before re-checking cancel and deadline
KILL_PATIENCE = 5.0  # seconds to wait for a SIGKILLed monitor to be gone


@dataclass
class Status:
    id: str
    status: str
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    created_at: str = ""
    started_at: str = ""
    finished_at: str = ""
    runtime: str = ""
    bundle: str = ""
    error: str = ""
    volume_mounts: list[dict] = field(default_factory=list)
    restart_count: int = 0


@dataclass
class RuntimeInfo:
    name: str
    path: str
    version: str


def parse_signal(text: str, default: int) -> int:
    """"SIGKILL", "KILL", "kill" or "9" -> 9; empty -> ``default``."""
    text = text.strip()
    if not text:
        return default
    if text.isdigit():
        num = int(text)
        if not 0 < num < 65:
            raise InvalidArgument(f"invalid signal {text!r}")
        return num
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signalmod.Signals[name])
    except KeyError:
        raise InvalidArgument(f"invalid signal {text!r}") from None


_CRUN_NOT_FOUND = re.compile(r"executable file `(.+?)` not found in \$PATH")


def _exec_error(text: str) -> str:
    """One message for a missing executable whatever the runtime (runc's wording)."""
    m = _CRUN_NOT_FOUND.search(text)
    if m and "executable file not found" not in text:
        return f'exec: "{m.group(1)}": executable file not found in $PATH: {text}'
    return text


def _now() -> str:
    return logs.rfc3339_nano(time.time_ns())


class Shim:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        # First: an engine that would share the bridge or cgroup parent of another starts
        # nothing (FAILED_PRECONDITION, and the service exits with that line).
        self.claims = Claims(cfg.root, {
            "network.bridge": default_bridge(cfg.state_dir("shim"), cfg.network),
            "shim.cgroup_parent": cfg.shim.cgroup_parent})
        self.claims.acquire()
        self.store = Store(cfg.state_dir("shim"))
        self.volumes = VolumeStore(cfg.state_dir("shim") / "volumes")
        access.tighten_all(self.store, self.volumes)
        self.runtimes = Runtimes(cfg)
        self.log = get_logger(component="shim")
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._stopped_unrecorded: set[str] = set()  # stops a full disk kept from meta.json
        self.spawner = Spawner(cfg.run / "forkserver.log")
        self.supervisor = restart.Supervisor(restart.Hooks(
            wait_stopped=lambda cid, cancelled: self._wait_stopped(cid, None, cancelled),
            exit_code=lambda cid: self.state(cid).exit_code,
            started_at=self._started_at,
            manually_stopped=lambda cid: cid in self._stopped_unrecorded
            or bool(self._meta(cid).get("manually_stopped")),
            restarts=lambda cid: int(self._meta(cid).get("restart_count", 0)),
            restart=self._restart_by_policy))
        self.networks = NetworkManager(cfg.state_dir("shim"), cfg.network,
                                       lambda cid: self.store.dir(cid).path,
                                       pid_of=self._running_pid)
        # A run that ends by itself gives its network back at once, as Docker does.
        self.exits = ExitWatch(self._exited)

    def close(self) -> None:
        """Stop the monitor fork server; containers and their monitors keep running.
        An idle default bridge goes too (a busy one stays for the running containers)."""
        self.spawner.close()
        self.exits.close()
        try:
            self.networks.close()
        except MuelleError as exc:
            self.log.warning("could not remove the idle default bridge", error=str(exc))
        finally:
            self.claims.release()

    # ---------------------------------------------------------------- helpers

    def _running_pid(self, cid: str) -> int:
        try:
            status = self.state(cid)
        except NotFound:
            return 0
        return status.pid if status.status in ("running", "paused") else 0

    def _lock(self, cid: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(cid, threading.RLock())

    def _existing(self, cid: str) -> ContainerDir:
        cdir = self.store.dir(cid)
        meta = cdir.read_meta()
        if not meta or meta.get("creating"):
            raise NotFound(f"no such container: {cid}")
        return cdir

    def _runtime_of(self, cdir: ContainerDir) -> Runtime:
        return self.runtimes.get(cdir.read_meta().get("runtime", ""))

    def _monitor_alive(self, cdir: ContainerDir) -> bool:
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

    # ---------------------------------------------------------------- lifecycle

    def create(self, cid: str, cspec: runtime_pb2.ContainerSpec,
               rootfs: Sequence[types_pb2.Mount], runtime_name: str = "") -> str:
        # The runtime's cgroup join (~20 ms from now) waits for an RCU grace period unless
        # one passed lately: start one now (services/runtime/cgroups: prime_migration).
        cgroups.prime_migration()
        cdir = self.store.dir(cid)
        log = get_logger(container=cid[:12])
        runtime = self.runtimes.get(runtime_name)
        with self._lock(cid):
            try:
                cdir.path.mkdir(mode=modes.PRIVATE_DIR)  # see access.py
            except FileExistsError:
                raise AlreadyExists(f"container {cid} already exists") from None
            resolved = volume_mounts.Resolved()
            try:
                cdir.rootfs.mkdir()
                maps = spec.maps_of(cspec)
                mounts.mount_all(rootfs, str(cdir.rootfs), maps)
                if maps:  # before the network: its namespace will belong to this one
                    usernsmod.pin(str(cdir.userns), maps)
                user = users.resolve(str(cdir.rootfs), cspec.user)
                spec.check_workdir(str(cdir.rootfs), cspec.cwd)
                config = spec.build_config(spec.BundleInput(
                    id=cid, spec=cspec, user=user, cgroup_parent=self.cfg.shim.cgroup_parent,
                    available_sysctls=spec.host_sysctls(),
                    thermal_paths=spec.host_thermal_paths(),
                    init_path=spec.find_init(self.cfg.shim.init_path) if cspec.init else "",
                    userns_path=str(cdir.userns) if maps else "",
                    join_paths=self._namespace_peers(cspec),
                    host_devices=host_devices() if cspec.privileged else []))
                resolved = volume_mounts.prepare(cspec.volume_mounts, str(cdir.rootfs), cid,
                                                 self.volumes)
                access.share(cdir, maps, resolved.records)
                plan = self.networks.prepare(cid, request_of(cspec, config["hostname"]))
                plan_config(config, plan)  # hosts, hostname, resolv.conf: user mounts win
                config["mounts"] = spec.with_user_mounts(config["mounts"], resolved.oci)
                propagation = spec.rootfs_propagation(resolved.oci)
                if propagation:
                    config["linux"]["rootfsPropagation"] = propagation
                if cspec.terminal and cspec.console_size.rows and cspec.console_size.cols:
                    config["process"]["consoleSize"] = {"height": cspec.console_size.rows,
                                                        "width": cspec.console_size.cols}
                write_json(cdir.config, config)
                meta = {
                    "runtime": runtime.name,
                    "created_at": _now(),
                    "cgroups_path": config["linux"]["cgroupsPath"],
                    # its processes die with its init (delete may then unmount early)
                    "own_pid_ns": any(n.get("type") == "pid" and not n.get("path")
                                      for n in config["linux"].get("namespaces") or []),
                    "log_max_size": cspec.log_max_size or self.cfg.shim.log_max_size,
                    "log_max_files": cspec.log_max_files or self.cfg.shim.log_max_files,
                    "restart_policy": restart.parse(cspec.restart_policy).text(),
                    "rootfs": [{"type": m.type, "source": m.source, "target": m.target,
                                "options": list(m.options)} for m in rootfs],
                    "volumes": resolved.records,
                }
                if cspec.uid_maps:
                    meta["userns"] = spec.maps_of(cspec)
                if cspec.open_stdin:
                    meta["stdin"] = {"once": cspec.stdin_once}
                if cspec.terminal:
                    meta["terminal"] = True
                # "creating" until the runtime made it: restore drops such leftovers.
                write_json(cdir.meta, {**meta, "creating": True}, durable=False)
                # veth and address are wired while the runtime creates (the init waits
                # for start), both mostly wait in the kernel; joined before create returns.
                # On any error _destroy below takes the network down.
                wiring = self.networks.up_background(cid)
                try:
                    self._spawn_monitor(cdir, runtime, meta["cgroups_path"])
                except BaseException:
                    wiring.wait()  # a network error (a busy port...) is the one to tell
                    raise
                wiring.wait()
                write_json(cdir.meta, meta)
                self.exits.watch(cid, self._monitor_pidfd(cdir))
            except BaseException as exc:
                log.warning("create failed", error=str(exc))
                volume_mounts.release(resolved.records, cid, self.volumes, remove_anonymous=True)
                self._destroy(cdir, runtime, remove_volumes=True)
                raise
        log.info("created", runtime=runtime.name)
        return str(cdir.path)

    def _spawn_monitor(self, cdir: ContainerDir, runtime: Runtime, cgroups_path: str) -> int:
        """Start a monitor for a new run; returns the init pid or raises the create error."""
        runtime.root.mkdir(parents=True, exist_ok=True)
        with cdir.after_delete():  # the last run's monitor may be deleting it still
            if runtime.may_know(cdir.id) and runtime.state(cdir.id) is not None:
                # left by a monitor that was killed
                runtime.delete(cdir.id, force=True)
        cdir.clear_run()
        read_fd, write_fd = os.pipe()
        meta = cdir.read_meta() or {}
        stdin, terminal = meta.get("stdin"), bool(meta.get("terminal"))
        console = stdinmod.socket_path(str(self.cfg.run), cdir.id, "console") \
            if terminal else ""
        argv = [
            *(["--stdin-socket", self.stdin_socket(cdir.id)] if stdin or terminal else []),
            *(["--stdin-once"] if stdin and stdin.get("once") else []),
            *(["--stdin-closed"] if terminal and not stdin else []),
            *(["--console-socket", console] if terminal else []),
            "--dir", str(cdir.path),
            "--create", json.dumps(runtime.create_argv(cdir.id, str(cdir.path),
                                                       str(cdir.init_pid), console)),
            "--delete", json.dumps(runtime.delete_argv(cdir.id, force=True)),
            "--cgroup", cgroups_path,
            *(["--warm-runtime"] if runtime.warm else []),
            *self._log_limits(cdir),
        ]
        try:
            self.spawner.spawn(argv, write_fd, cdir.monitor_log)
            os.close(write_fd)
            write_fd = -1
            reply = self._read_sync(read_fd, CREATE_TIMEOUT)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        if "pid" in reply:
            return int(reply["pid"])
        if reply.get("no_space"):
            raise no_space(f"the files of container {cdir.id}'s monitor ({cdir.path})")
        error = _exec_error(str(reply.get("error") or "the monitor exited without reporting"))
        if not reply:
            tail = cdir.monitor_log.read_text(errors="replace")[-2000:] \
                if cdir.monitor_log.exists() else ""
            error += f": {tail.strip()}" if tail.strip() else ""
        raise FailedPrecondition(error)

    def _log_limits(self, cdir: ContainerDir) -> list[str]:
        meta = cdir.read_meta()
        size = int(meta.get("log_max_size") or self.cfg.shim.log_max_size)
        files = int(meta.get("log_max_files") or self.cfg.shim.log_max_files)
        return ["--log-max-size", str(size), "--log-max-files", str(files)]

    @staticmethod
    def _read_sync(fd: int, timeout: float) -> dict:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                return {"error": "timed out waiting for the runtime to create the container"}
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
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

    def _destroy(self, cdir: ContainerDir, runtime: Runtime | None,
                 remove_volumes: bool = False, stopped: bool = False) -> None:
        """Undo everything create made: monitor, runtime state, mounts, volume refs, dir.
        ``stopped``: no process of the container is left (delete waited for that)."""
        self._kill_monitor(cdir)
        # Deleting the veth waits ~20-30 ms for RCU grace periods in the kernel: it runs
        # beside the runtime's delete and the unmounts; joined before the dir goes.
        unwiring = Background(lambda: self.networks.down(cdir.id),
                              name=f"net-down-{cdir.id[:12]}")
        try:
            # A stopped container's rootfs goes while the monitor's runtime delete may
            # still run: that touches only the cgroup and the runtime's state (the bundles
            # made here have no poststop hooks, which could look at the rootfs).
            if stopped:
                self._unmount_rootfs(cdir)
            with cdir.after_delete():  # the monitor's delete, if it still runs, first
                if runtime is not None and runtime.may_know(cdir.id) \
                        and runtime.state(cdir.id) is not None:
                    with contextlib.suppress(MuelleError):
                        runtime.delete(cdir.id, force=True)
            if not stopped:
                self._unmount_rootfs(cdir)
            records = (cdir.read_meta() or {}).get("volumes") or []
            volume_mounts.release(records, cdir.id, self.volumes, remove_volumes)
        finally:
            unwiring.wait()
        usernsmod.unpin(str(cdir.userns))  # after the netns it owns is unpinned
        shutil.rmtree(cdir.path, ignore_errors=True)
        for kind in ("sock", "console"):  # left by a monitor that was killed
            with contextlib.suppress(OSError):
                os.unlink(stdinmod.socket_path(str(self.cfg.run), cdir.id, kind))

    def _kill_monitor(self, cdir: ContainerDir) -> None:
        """SIGKILL the container's monitor and its process group (it leads one, in its own
        session): a `<runtime> create` it runs must not finish after the runtime's state
        was looked at. Waits until it is gone, so nothing of it races what follows."""
        if not self._monitor_alive(cdir):
            return
        pid = cdir.read_pid(cdir.monitor_pid)
        exit_fd = self._monitor_pidfd(cdir)
        try:
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signalmod.SIGKILL)
                else:
                    os.kill(pid, signalmod.SIGKILL)
            if exit_fd >= 0:
                select.select([exit_fd], [], [], KILL_PATIENCE)
        finally:
            if exit_fd >= 0:
                os.close(exit_fd)

    @staticmethod
    def _unmount_rootfs(cdir: ContainerDir) -> None:
        if cdir.rootfs.exists():
            mounts.unmount(str(cdir.rootfs))

    def start(self, cid: str, unless_running: bool = False) -> int | None:
        """Start by hand: clears a `stop`, and (re)arms the restart policy. None: it was
        running or paused, and ``unless_running`` asked to leave it so."""
        with self._lock(cid):
            if unless_running and self.state(cid).status in ("running", "paused"):
                return None
            self._update_meta(cid, manually_stopped=False)
            self._stopped_unrecorded.discard(cid)
            pid = self._start(cid)
        policy = restart.parse(self._meta(cid).get("restart_policy", ""))
        self.supervisor.watch(cid, policy)
        return pid

    def update_restart_policy(self, cid: str, text: str) -> None:
        """`docker update --restart`: kept for later starts; a running container is
        supervised under it from now on."""
        policy = restart.parse(text)
        with self._lock(cid):
            self._update_meta(cid, restart_policy=policy.text())
            running = self.state(cid).status in ("running", "paused")
        self.supervisor.forget(cid)
        if running:
            self.supervisor.watch(cid, policy)

    def _restart_by_policy(self, cid: str) -> None:
        with self._lock(cid):
            if self._meta(cid).get("manually_stopped") or cid in self._stopped_unrecorded:
                # A stop came after the supervisor looked: stop marks it under this lock,
                # so either it sees this run and stops it, or this sees its mark.
                return
            self._update_meta(cid, restart_count=int(self._meta(cid).get("restart_count", 0)) + 1)
            self._start(cid)

    def _meta(self, cid: str) -> dict:
        return self.store.dir(cid).read_meta()

    def _update_meta(self, cid: str, **changes: object) -> None:
        cdir = self._existing(cid)
        meta = cdir.read_meta()
        if all(meta.get(key, False) == value for key, value in changes.items()):
            return  # a first start clears a `stop` that never was: nothing to write
        write_json(cdir.meta, {**meta, **changes})

    def _started_at(self, cid: str) -> float:
        stamp = (read_json(self.store.dir(cid).started) or {}).get("started_at", "")
        try:
            return logs.parse_time(stamp) / 1e9 if stamp else 0.0
        except MuelleError:
            return 0.0

    def _start(self, cid: str) -> int:
        with self._lock(cid):
            cdir = self._existing(cid)
            current = self.state(cid)
            if current.status == "running":
                raise FailedPrecondition(f"container {cid} is already running")
            if current.status == "paused":
                raise FailedPrecondition(f"container {cid} is paused")
            runtime = self._runtime_of(cdir)
            if current.status == "stopped":
                # A new run from the same bundle: new monitor, create, then start.
                meta = cdir.read_meta()
                if not mounts.is_mounted(str(cdir.rootfs)):
                    rootfs = [types_pb2.Mount(**m) for m in meta.get("rootfs", [])]
                    mounts.mount_all(rootfs, str(cdir.rootfs), userns_maps(meta))
                access.share(cdir, userns_maps(meta), meta.get("volumes") or [])
                self.networks.up(cid)  # given back when it stopped
                try:
                    self._spawn_monitor(cdir, runtime, meta["cgroups_path"])
                except BaseException:
                    self.networks.down(cid)  # no run, no network
                    raise
                self.exits.watch(cid, self._monitor_pidfd(cdir))
            pid = cdir.read_pid(cdir.init_pid)
            # Recorded first, so a container that exits at once never looks unstarted.
            write_json(cdir.started, {"started_at": _now()}, durable=False)
            try:
                runtime.start(cid)
            except FailedPrecondition:
                # A container that exits at once races its own start: the monitor's
                # `<runtime> delete` can remove the state (exec.fifo) that `<runtime> start`
                # is still cleaning up. Only a container the runtime still calls
                # "created" has really not started.
                state = runtime.state(cid)
                if cdir.read_status() is None and state is not None \
                        and state.get("status") == "created":
                    cdir.started.unlink(missing_ok=True)
                    raise
                # It ran (and maybe exited) before we returned; that is a successful start.
        get_logger(container=cid[:12]).info("started", pid=pid)
        return pid

    def kill(self, cid: str, signal: str) -> None:
        signum = parse_signal(signal, signalmod.SIGKILL)
        cdir = self._existing(cid)
        current = self.state(cid)
        if current.status not in ("created", "running", "paused"):
            raise FailedPrecondition(f"container {cid} is not running")
        runtime = self._runtime_of(cdir)
        try:
            runtime.kill(cid, signum)
        except FailedPrecondition:
            if cdir.read_status() is not None or not self._monitor_alive(cdir):
                raise FailedPrecondition(f"container {cid} is not running") from None
            raise
        if current.status == "paused" and signum == signalmod.SIGKILL:
            # A frozen process dies only when thawed (docker kill of a paused container).
            with contextlib.suppress(FailedPrecondition):
                runtime.resume(cid)
        get_logger(container=cid[:12]).info("signalled", signal=signum)

    def pause(self, cid: str) -> None:
        with self._lock(cid):
            cdir = self._existing(cid)
            current = self.state(cid)
            if current.status == "paused":
                raise FailedPrecondition(f"container {cid} is already paused")
            if current.status != "running":
                raise FailedPrecondition(f"container {cid} is not running")
            self._runtime_of(cdir).pause(cid)
        get_logger(container=cid[:12]).info("paused")

    def resume(self, cid: str) -> None:
        with self._lock(cid):
            cdir = self._existing(cid)
            if self.state(cid).status != "paused":
                raise FailedPrecondition(f"container {cid} is not paused")
            self._runtime_of(cdir).resume(cid)
        get_logger(container=cid[:12]).info("resumed")

    def stop(self, cid: str, signal: str = "", timeout: int = 10,
             cancelled: Callable[[], bool] = lambda: False) -> Status:
        signum = parse_signal(signal, signalmod.SIGTERM)
        self._existing(cid)
        # Before the signal: the restart policy must not bring it back (Docker's stop).
        with self._lock(cid):
            try:
                self._update_meta(cid, manually_stopped=True)
            except ResourceExhausted as exc:
                # A full disk with no room even in meta.json's own block: the stop goes
                # on (it must work on a full disk); this shim remembers it for the policy.
                get_logger(container=cid[:12]).warning("stop not recorded", error=str(exc))
                self._stopped_unrecorded.add(cid)
            # After the mark, under the lock a restart's create-and-start holds: a restart
            # either finished (running: stopped below) or will see the mark. A container
            # created and never started stays so, as Docker leaves it.
            current = self.state(cid)
            if current.status == "created":
                return current
        if current.status != "stopped":
            with contextlib.suppress(FailedPrecondition):
                self.kill(cid, str(signum))
            deadline = None if timeout < 0 else time.monotonic() + timeout
            if not self._wait_stopped(cid, deadline, cancelled):
                get_logger(container=cid[:12]).info("stop timed out, killing",
                                                    timeout=timeout)
                with contextlib.suppress(FailedPrecondition):
                    self.kill(cid, "SIGKILL")
                self._wait_stopped(cid, None, cancelled)
        status = self.state(cid)
        if status.status == "stopped":
            with self._lock(cid):
                self.networks.down(cid)  # published ports and the address go on stop
        return status

    def _exited(self, cid: str) -> None:
        """A run ended (its monitor exited): its veths, addresses, published ports and
        netns go now, not at `rm` (Docker's release at exit); `start` wires them again."""
        with self._lock(cid):
            try:
                status = self.state(cid)
            except NotFound:
                return  # removed meanwhile
            if status.status == "stopped" and self.networks.read(cid).get("endpoints"):
                self.networks.down(cid)
                get_logger(container=cid[:12]).info("network released at exit")

    def _wait_stopped(self, cid: str, deadline: float | None,
                      cancelled: Callable[[], bool]) -> bool:
        cdir = self._existing(cid)
        # The monitor writes status.json, then exits: sleep on its pidfd rather than poll.
        # Waking every WAKE at most keeps `cancelled` and `deadline` honoured.
        exit_fd = self._monitor_pidfd(cdir)
        try:
            while not cancelled():
                if self._stopped(cdir):
                    return True
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return False
                if exit_fd < 0:
                    time.sleep(POLL)
                    continue
                left = WAKE if deadline is None else min(WAKE, deadline - now)
                if select.select([exit_fd], [], [], left)[0]:
                    os.close(exit_fd)
                    exit_fd = -1  # exited: the next check sees it (or polls if not yet)
            return False
        finally:
            if exit_fd >= 0:
                os.close(exit_fd)

    def _monitor_pidfd(self, cdir: ContainerDir) -> int:
        """A pidfd of the container's live monitor, or -1 (none, or no pidfd support)."""
        pid = cdir.read_pid(cdir.monitor_pid)
        try:
            fd = os.pidfd_open(pid) if pid > 0 else -1
        except OSError:
            return -1
        if fd >= 0 and not self._monitor_alive(cdir):  # opened after a pid reuse
            os.close(fd)
            return -1
        return fd

    def _stopped(self, cdir: ContainerDir) -> bool:
        """Cheap check for polling loops (no runtime call): exited or monitor gone."""
        return cdir.status.exists() or not cdir.path.exists() or not self._monitor_alive(cdir)

    def wait(self, cid: str, cancelled: Callable[[], bool] = lambda: False) -> Status:
        self._existing(cid)
        self._wait_stopped(cid, None, cancelled)
        return self.state(cid)

    def _namespace_peers(self, cspec: runtime_pb2.ContainerSpec) -> dict[str, str]:
        """kind -> namespace path of the running container that ipc_mode / pid_mode
        name ("container:<id>")."""
        out = {}
        for kind, mode in (("ipc", cspec.ipc_mode), ("pid", cspec.pid_mode)):
            if not mode.startswith("container:"):
                continue
            peer = mode[10:]
            st = self.state(peer)
            if st.status != "running" or st.pid <= 0:
                raise FailedPrecondition(f"cannot join the {kind} namespace of container "
                                         f"{peer[:12]}: it is not running")
            out[kind] = f"/proc/{st.pid}/ns/{kind}"
        return out

    def state(self, cid: str) -> Status:
        cdir = self._existing(cid)
        meta = cdir.read_meta()
        out = Status(id=cid, status="created", created_at=meta.get("created_at", ""),
                     restart_count=int(meta.get("restart_count", 0)),
                     runtime=meta.get("runtime", ""), bundle=str(cdir.path),
                     volume_mounts=list(meta.get("volumes") or []))
        started = read_json(cdir.started) or {}
        out.started_at = started.get("started_at", "")
        exited = cdir.read_status()
        if exited is not None:
            out.status = "stopped"
            out.exit_code = int(exited.get("exit_code", 0))
            out.oom_killed = bool(exited.get("oom_killed", False))
            out.finished_at = exited.get("finished_at", "")
            out.error = exited.get("error", "")
            return out
        if not self._monitor_alive(cdir):
            # The monitor died before recording an exit (killed, or the host rebooted).
            out.status = "stopped"
            out.exit_code = 255
            out.error = "the container's monitor exited without recording its status"
            return out
        out.pid = cdir.read_pid(cdir.init_pid)
        out.status = "running" if out.started_at else "created"
        if out.started_at and cgroupfs.frozen(meta.get("cgroups_path", "")):
            out.status = "paused"  # runc/crun pause = a frozen cgroup: no `state` process
        return out

    def list(self) -> list[Status]:
        out = []
        for cdir in self.store.all():
            with contextlib.suppress(NotFound):
                out.append(self.state(cdir.id))
        return out

    def delete(self, cid: str, force: bool = False, remove_volumes: bool = False) -> Status:
        """Remove the container; its last status (after the kill, if forced)."""
        with self._lock(cid):
            cdir = self._existing(cid)
            current = self.state(cid)
            if current.status in ("running", "paused") and not force:
                raise FailedPrecondition(
                    f"cannot remove container {cid}: container is {current.status}: "
                    "stop the container before removing or force remove")
            runtime = self._runtime_of(cdir)
            if current.status != "stopped":
                with contextlib.suppress(FailedPrecondition):
                    runtime.kill(cid, signalmod.SIGKILL)
                if current.status == "paused":
                    with contextlib.suppress(FailedPrecondition):
                        runtime.resume(cid)  # the SIGKILL lands when thawed
                if not self._wait_stopped(cid, time.monotonic() + 30, lambda: False):
                    raise FailedPrecondition(f"container {cid} did not stop after SIGKILL")
                current = self.state(cid)
            # The monitor ran `delete`; make sure, since it may have been killed.
            # All gone once the exit was recorded, if they lived in its pid namespace (not
            # when the monitor died first, nor with --pid host: the delete kills them).
            gone = cdir.read_status() is not None and bool(cdir.read_meta().get("own_pid_ns"))
            self._destroy(cdir, runtime, remove_volumes, stopped=gone)
        with self._locks_guard:
            self._locks.pop(cid, None)
        get_logger(container=cid[:12]).info("deleted")
        return current

    def _follow(self, cdir: ContainerDir, *, tail: int, since: str, streams: set[str] | None,
                stopped: Callable[[], bool], cancelled: Callable[[], bool],
                ) -> Iterator[logs.Entry]:
        """follow_log that wakes as soon as the monitor exits (run --rm ends sooner)."""
        exit_fd = self._monitor_pidfd(cdir)

        def pause(seconds: float) -> None:
            if exit_fd < 0:
                time.sleep(seconds)
            else:
                select.select([exit_fd], [], [], seconds)

        try:
            yield from logs.follow_log(str(cdir.log), tail=tail, since=since, streams=streams,
                                       follow=True, stopped=stopped, cancelled=cancelled,
                                       pause=pause)
        finally:
            if exit_fd >= 0:
                os.close(exit_fd)

    def logs(self, cid: str, *, follow: bool = False, tail: int = 0, since: str = "",
             stdout: bool = False, stderr: bool = False,
             cancelled: Callable[[], bool] = lambda: False) -> Iterator[logs.Entry]:
        cdir = self._existing(cid)
        streams = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on} or None

        def stopped() -> bool:
            return self._stopped(cdir)

        if since:
            logs.parse_time(since)  # bad input fails before the stream starts
        if not follow:
            return logs.follow_log(str(cdir.log), tail=tail, since=since, streams=streams,
                                   stopped=stopped, cancelled=cancelled)
        return self._follow(cdir, tail=tail, since=since, streams=streams, stopped=stopped,
                            cancelled=cancelled)

    def stats(self, ids: Sequence[str]) -> builtins.list[tuple[str, stats.Counters]]:
        """Counters of the given containers (every running one when none are named);
        stopped ones are skipped, unknown ones are NotFound."""
        wanted = list(ids) or [s.id for s in self.list() if s.status in ("running", "paused")]
        out = []
        for cid in wanted:
            cdir = self._existing(cid)
            current = self.state(cid)
            if current.status not in ("running", "paused"):
                continue
            out.append((cid, stats.read(cdir.read_meta().get("cgroups_path", ""),
                                        current.pid)))
        return out

    def top(self, cid: str, ps_args: str = "") -> tuple[builtins.list[str],
                                                          builtins.list[builtins.list[str]]]:
        cdir = self._existing(cid)
        if self.state(cid).status not in ("running", "paused"):
            raise FailedPrecondition(f"container {cid} is not running")
        return stats.processes(cdir.read_meta().get("cgroups_path", ""), ps_args)

    def copy_to(self, cid: str, path: str, data: IO[bytes], copy_uid_gid: bool,
                no_overwrite_dir_non_dir: bool) -> None:
        """`docker cp` into the container: its mounted rootfs (copyin.py)."""
        cdir = self._existing(cid)
        with self._lock(cid):
            if not os.path.ismount(cdir.rootfs):
                raise FailedPrecondition(f"the root filesystem of container {cid} is not "
                                         "mounted")
            copyin.extract(str(cdir.rootfs), path, data, None if copy_uid_gid else (0, 0),
                           no_overwrite_dir_non_dir)

    def exec(self, cid: str, req: ExecRequest,
             stdin: Iterator[bytes | tuple[int, int] | None],
             cancelled: Callable[[], bool] = lambda: False) -> Iterator[Output | Exit]:
        """Run ``req`` in the running container ``cid`` (services/shim/exec.py)."""
        cdir = self._existing(cid)
        current = self.state(cid).status
        if current != "running":
            raise FailedPrecondition(f"container {cid} is not running" if current != "paused"
                                     else f"container {cid} is paused, unpause it first")
        run = ExecRun(cdir, self._runtime_of(cdir), req, str(self.cfg.run))
        run.start()
        log = get_logger(container=cid[:12])
        log.info("exec", args=req.args[:1], detach=req.detach)
        if req.detach:
            yield run.detached()
            return
        run.feed(stdin)
        finished = False
        try:
            for event in run.events(cancelled):
                finished = finished or isinstance(event, Exit)
                yield event
        finally:
            if not finished:
                run.kill()  # the client went away
            run.cleanup()

    def stdin_socket(self, cid: str) -> str:
        return stdinmod.socket_path(str(self.cfg.run), cid)

    def write_stdin(self, cid: str, chunks: Iterable[bytes | tuple[int, int]],
                    eof: Callable[[], bool] = lambda: True) -> None:
        """Copy ``chunks`` into the container's stdin; at their end, EOF if ``eof()``
        (the client closed its stdin), else a detach (the stdin stays open)."""
        cdir = self._existing(cid)
        meta = cdir.read_meta() or {}
        if not meta.get("stdin") and not meta.get("terminal"):
            raise FailedPrecondition(f"the stdin of container {cid} is not open "
                                     "(create it with -i)")
        try:
            stdinmod.send(self.stdin_socket(cid), chunks, eof)
        except (FileNotFoundError, ConnectionRefusedError):
            raise FailedPrecondition(f"container {cid} is not running") from None
        except BrokenPipeError:
            pass  # the container closed its stdin or exited: the rest is dropped

    def list_runtimes(self) -> tuple[builtins.list[RuntimeInfo], str]:
        infos = [RuntimeInfo(r.name, r.path, r.version()) for r in self.runtimes.available()]
        return infos, self.runtimes.default

    # ---------------------------------------------------------------- live restore

    def restore(self) -> None:
        """Rediscover container dirs after a (re)start; drop half-created ones."""
        self.networks.reconcile()
        for cdir in self.store.all():
            meta = cdir.read_meta()
            if meta and not meta.get("creating"):
                status = self.state(cdir.id)
                self.log.info("restored", container=cdir.id[:12], status=status.status)
                if status.status in ("running", "paused"):  # keep applying its policy
                    self.supervisor.watch(cdir.id, restart.parse(meta.get("restart_policy", "")))
                if status.status == "stopped":
                    self._exited(cdir.id)  # it ended while no shim watched
                else:
                    self.exits.watch(cdir.id, self._monitor_pidfd(cdir))
                continue
            # Restore runs before serving: no create of ours can be running, so this is
            # one the last shim was killed in. Its monitor may live on, with an init
            # blocked on its exec FIFO: all of it goes (the gateway's undo, seeing the
            # create fail, asks for the same).
            self.log.warning("removing half-created container", container=cdir.id[:12],
                             monitor=self._monitor_alive(cdir))
            runtime = None
            with contextlib.suppress(MuelleError):
                runtime = self.runtimes.get(meta.get("runtime", ""))
            self._destroy(cdir, runtime, remove_volumes=True)
        self.volumes.forget_containers({c.id for c in self.store.all()})


def userns_maps(meta: dict) -> usernsmod.Maps | None:
    """The user namespace maps meta.json keeps (JSON lists back into tuples)."""
    maps = meta.get("userns")
    if not maps:
        return None
    return (tuple(tuple(r) for r in maps[0]), tuple(tuple(r) for r in maps[1]))  # type: ignore[return-value]
