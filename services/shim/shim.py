"""The shim core: container lifecycle on this host, in plain Python (no gRPC here).

State lives only on disk (store.py, meta.py) and in the monitors, so a restarted shim
rediscovers every container (live restore, liverestore.py) by reading the container dirs
back. The concerns beside the lifecycle have their modules: bundle.py builds the bundle
and the typed meta, monitors.py starts and watches the monitors, status.py reads a
container's status, containerio.py serves logs, stdin, exec, stats and top.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import signal as signalmod
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO

from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.core import modes
from services.core.config import Config
from services.core.logging import get_logger
from services.runtime import api
from services.shim import (
    access,
    copyin,
    copyout,
    cpview,
    logs,
    mounts,
    restart,
    shm,
    spec,
    status,
    update,
    volume_mounts,
)
from services.shim import stdin as stdinmod
from services.shim import userns as usernsmod
from services.shim.background import Background
from services.shim.bundle import Bundle
from services.shim.claims import Claims
from services.shim.containerio import ContainerIO
from services.shim.exits import ExitWatch
from services.shim.liverestore import restore
from services.shim.meta import Meta
from services.shim.monitors import Monitors
from services.shim.network import Manager as NetworkManager
from services.shim.network.manager import default_bridge
from services.shim.runtimes import Runtime, Runtimes
from services.shim.status import RuntimeInfo, Status
from services.shim.statuscache import StatusCache
from services.shim.store import ContainerDir, Store, read_json, write_json
from services.shim.volumes import VolumeStore
from vocab.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    MuelleError,
    NotFound,
    ResourceExhausted,
)

__all__ = ["RuntimeInfo", "Shim", "Status", "parse_signal"]


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
        self.monitors = Monitors(cfg)
        self.io = ContainerIO(self, str(cfg.run))  # logs, stdin, exec, stats, top
        self.supervisor = restart.Supervisor(restart.Hooks(
            wait_stopped=lambda cid, cancelled: self._wait_stopped(cid, None, cancelled),
            exit_code=lambda cid: self.state(cid).exit_code,
            started_at=self._started_at,
            manually_stopped=lambda cid: cid in self._stopped_unrecorded
            or self._meta(cid).manually_stopped,
            restarts=lambda cid: self._meta(cid).restart_count,
            restart=self._restart_by_policy))
        self.networks = NetworkManager(cfg.state_dir("shim"), cfg.network,
                                       lambda cid: self.store.dir(cid).path,
                                       pid_of=self._running_pid)
        # A run that ends by itself gives its network back at once, as Docker does.
        self.exits = ExitWatch(self.exited)
        # what list() need not re-read
        self.statuses = StatusCache(self.exits.watching, self.exits.watching_all)

    def close(self) -> None:
        """Stop the monitor fork server; containers and their monitors keep running.
        An idle default bridge goes too (a busy one stays for the running containers)."""
        self.monitors.close()
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

    def existing(self, cid: str) -> ContainerDir:
        """The dir of a container that exists (made, not being created); else NotFound."""
        cdir = self.store.dir(cid)
        meta = Meta.read(cdir)
        if meta is None or meta.creating:
            raise NotFound(f"no such container: {cid}")
        return cdir

    def _meta(self, cid: str) -> Meta:
        return Meta.read(self.store.dir(cid)) or Meta()

    def runtime_of(self, cdir: ContainerDir) -> Runtime:
        return self.runtimes.get((Meta.read(cdir) or Meta()).runtime)

    # ---------------------------------------------------------------- lifecycle

    def create(self, cid: str, cspec: shim_pb2.ContainerSpec,
               rootfs: Sequence[types_pb2.Mount], runtime_name: str = "") -> str:
        # The runtime's cgroup join (~20 ms from now) waits for an RCU grace period unless
        # one passed lately: start one now (services/runtime/cgroups: prime_migration).
        api.prime_migration()
        cdir = self.store.dir(cid)
        log = get_logger(container=cid[:12])
        runtime = self.runtimes.get(runtime_name)
        spec.check_propagation(cspec.volume_mounts, runtime.name)
        with self._lock(cid):
            try:
                cdir.path.mkdir(mode=modes.PRIVATE_DIR)  # see access.py
            except FileExistsError:
                raise AlreadyExists(f"container {cid} already exists") from None
            bundle = Bundle(cdir, self.cfg, self.volumes, self.networks)
            try:
                meta = bundle.build(cspec, rootfs, runtime.name, _now(),
                                    lambda: self._namespace_peers(cspec),
                                    self._ipc_peer(cspec))
                # "creating" until the runtime made it: restore drops such leftovers.
                meta.creating = True
                meta.write(cdir, durable=False)
                # veth and address are wired while the runtime creates (the init waits
                # for start), both mostly wait in the kernel; joined before create returns.
                # On any error destroy below takes the network down.
                wiring = self.networks.up_background(cid)
                try:
                    self.monitors.spawn(cdir, runtime, meta)
                except BaseException:
                    wiring.wait()  # a network error (a busy port...) is the one to tell
                    raise
                wiring.wait()
                meta.creating = False
                meta.write(cdir)
                self.exits.watch(cid, self.monitors.pidfd(cdir))
                self.statuses.invalidate(cid)
            except BaseException as exc:
                log.warning("create failed", error=str(exc))
                volume_mounts.release(bundle.resolved.records, cid, self.volumes,
                                      remove_anonymous=True)
                self.destroy(cdir, runtime, remove_volumes=True)
                raise
        log.info("created", runtime=runtime.name)
        return str(cdir.path)

    def destroy(self, cdir: ContainerDir, runtime: Runtime | None,
                 remove_volumes: bool = False, stopped: bool = False) -> None:
        """Undo everything create made: monitor, runtime state, mounts, volume refs, dir.
        ``stopped``: no process of the container is left (delete waited for that)."""
        self.statuses.invalidate(cdir.id)
        self.monitors.kill(cdir)
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
            records = (Meta.read(cdir) or Meta()).volumes or []
            volume_mounts.release(records, cdir.id, self.volumes, remove_volumes)
        finally:
            unwiring.wait()
        usernsmod.unpin(str(cdir.userns))  # after the netns it owns is unpinned
        shutil.rmtree(cdir.path, ignore_errors=True)
        self.statuses.forget(cdir.id)
        self.networks.forget(cdir.id)
        for kind in ("sock", "console"):  # left by a monitor that was killed
            with contextlib.suppress(OSError):
                os.unlink(stdinmod.socket_path(str(self.cfg.run), cdir.id, kind))

    @staticmethod
    def _unmount_rootfs(cdir: ContainerDir) -> None:
        """The rootfs and the shareable /dev/shm (services/shim/shm.py)."""
        if cdir.rootfs.exists():
            mounts.unmount(str(cdir.rootfs))
        shm.remove(cdir)

    def start(self, cid: str, unless_running: bool = False) -> int | None:
        """Start by hand: clears a `stop`, and (re)arms the restart policy. None: it was
        running or paused, and ``unless_running`` asked to leave it so."""
        with self._lock(cid):
            if unless_running and self.state(cid).status in ("running", "paused"):
                return None
            self._update_meta(cid, manually_stopped=False)
            self._stopped_unrecorded.discard(cid)
            pid = self._start(cid)
        policy = restart.parse(self._meta(cid).restart_policy)
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

    def copy_to(self, cid: str, path: str, data: IO[bytes], copy_uid_gid: bool,
                no_overwrite_dir_non_dir: bool) -> None:
        """`docker cp` into the container: its mounted rootfs with its mounts over it
        (copyin.py, cpview.py)."""
        with self._lock(cid), self._view(cid) as view:
            copyin.extract(view, path, data, None if copy_uid_gid else (0, 0),
                           no_overwrite_dir_non_dir)

    def stat_path(self, cid: str, path: str) -> types_pb2.ContainerPathStat | None:
        """`docker cp` out: the stat of ``path`` when it goes through the container's
        mounts, None when the image store's layers answer it (copyout.py)."""
        view = self._open_view(cid, required=False)
        if view is None:
            return None
        with view:
            found = view.resolve(path, follow_last=cpview.follows_last(path))
            try:
                return copyout.stat_of(path, found) if found.through_mounts else None
            finally:
                os.close(found.fd)

    def read_path(self, cid: str, path: str) -> Iterator[bytes]:
        """The tar of ``path`` in the container's view (copyout.py)."""
        view = self._open_view(cid, required=True)
        assert view is not None
        try:
            found = view.resolve(path, follow_last=cpview.follows_last(path))
        except BaseException:
            view.close()
            raise
        return copyout.read(view, path, found)

    @contextlib.contextmanager
    def _view(self, cid: str) -> Iterator[cpview.View]:
        view = self._open_view(cid, required=True)
        assert view is not None
        with view:
            yield view

    def _open_view(self, cid: str, required: bool) -> cpview.View | None:
        cdir = self.existing(cid)
        if not os.path.ismount(cdir.rootfs):
            if not required:
                return None  # the image store reads the layers themselves
            raise FailedPrecondition(f"the root filesystem of container {cid} is not "
                                     "mounted")
        return cpview.open_view(cdir)

    def _restart_by_policy(self, cid: str) -> None:
        with self._lock(cid):
            if self._meta(cid).manually_stopped or cid in self._stopped_unrecorded:
                # A stop came after the supervisor looked: stop marks it under this lock,
                # so either it sees this run and stops it, or this sees its mark.
                return
            self._update_meta(cid, restart_count=self._meta(cid).restart_count + 1)
            self._start(cid)

    def _update_meta(self, cid: str, **changes: object) -> None:
        cdir = self.existing(cid)
        meta = Meta.read(cdir) or Meta()
        if all(getattr(meta, key) == value for key, value in changes.items()):
            return  # a first start clears a `stop` that never was: nothing to write
        for key, value in changes.items():
            setattr(meta, key, value)
        try:
            meta.write(cdir)
        finally:
            self.statuses.invalidate(cid)  # restart_count is in the status

    def _started_at(self, cid: str) -> float:
        stamp = (read_json(self.store.dir(cid).started) or {}).get("started_at", "")
        try:
            return logs.parse_time(stamp) / 1e9 if stamp else 0.0
        except MuelleError:
            return 0.0

    def _start(self, cid: str) -> int:
        try:
            return self._start_run(cid)
        finally:
            # A new run (or a failed start's undo) is on disk: started.json, its monitor.
            self.statuses.invalidate(cid)

    def _start_run(self, cid: str) -> int:
        with self._lock(cid):
            cdir = self.existing(cid)
            current = self.state(cid)
            if current.status == "running":
                raise FailedPrecondition(f"container {cid} is already running")
            if current.status == "paused":
                raise FailedPrecondition(f"container {cid} is paused")
            runtime = self.runtime_of(cdir)
            if current.status == "stopped":
                # A new run from the same bundle: new monitor, create, then start.
                meta = Meta.read(cdir) or Meta()
                if not mounts.is_mounted(str(cdir.rootfs)):
                    rootfs = [types_pb2.Mount(**m) for m in meta.rootfs or []]
                    mounts.mount_all(rootfs, str(cdir.rootfs), meta.maps())
                access.share(cdir, meta.maps(), meta.volumes or [])
                self.networks.up(cid)  # given back when it stopped
                try:
                    self.monitors.spawn(cdir, runtime, meta)
                except BaseException:
                    self.networks.down(cid)  # no run, no network
                    raise
                self.exits.watch(cid, self.monitors.pidfd(cdir))
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
        cdir = self.existing(cid)
        current = self.state(cid)
        if current.status not in ("created", "running", "paused"):
            raise FailedPrecondition(f"container {cid} is not running")
        runtime = self.runtime_of(cdir)
        try:
            runtime.kill(cid, signum)
        except FailedPrecondition:
            if cdir.read_status() is not None or not self.monitors.alive(cdir):
                raise FailedPrecondition(f"container {cid} is not running") from None
            raise
        if current.status == "paused" and signum == signalmod.SIGKILL:
            # A frozen process dies only when thawed (docker kill of a paused container).
            try:
                with contextlib.suppress(FailedPrecondition):
                    runtime.resume(cid)
            finally:
                self.statuses.invalidate(cid)
        get_logger(container=cid[:12]).info("signalled", signal=signum)

    def pause(self, cid: str) -> None:
        with self._lock(cid):
            cdir = self.existing(cid)
            current = self.state(cid)
            if current.status == "paused":
                raise FailedPrecondition(f"container {cid} is already paused")
            if current.status != "running":
                raise FailedPrecondition(f"container {cid} is not running")
            try:
                self.runtime_of(cdir).pause(cid)
            finally:
                self.statuses.invalidate(cid)
        get_logger(container=cid[:12]).info("paused")

    def resume(self, cid: str) -> None:
        with self._lock(cid):
            cdir = self.existing(cid)
            if self.state(cid).status != "paused":
                raise FailedPrecondition(f"container {cid} is not paused")
            try:
                self.runtime_of(cdir).resume(cid)
            finally:
                self.statuses.invalidate(cid)
        get_logger(container=cid[:12]).info("resumed")

    def update(self, cid: str, res: shim_pb2.Resources) -> shim_pb2.Resources:
        """New resource limits (services/shim/update.py): live in the cgroup of a
        container that has processes (created, running, paused), and in its bundle."""
        with self._lock(cid):
            cdir = self.existing(cid)
            live = self.state(cid).status in ("created", "running", "paused")
            out = update.apply(cdir, res, (Meta.read(cdir) or Meta()).cgroups_path, live)
        get_logger(container=cid[:12]).info("updated")
        return out

    def stop(self, cid: str, signal: str = "", timeout: int = 10,
             cancelled: Callable[[], bool] = lambda: False) -> Status:
        signum = parse_signal(signal, signalmod.SIGTERM)
        self.existing(cid)
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

    def exited(self, cid: str) -> None:
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
        return self.monitors.wait_stopped(self.existing(cid), deadline, cancelled)

    def wait(self, cid: str, cancelled: Callable[[], bool] = lambda: False) -> Status:
        self.existing(cid)
        self._wait_stopped(cid, None, cancelled)
        return self.state(cid)

    def _ipc_peer(self, cspec: shim_pb2.ContainerSpec) -> ContainerDir | None:
        """The dir of the container whose IPC namespace (and /dev/shm) this one joins."""
        if cspec.ipc_mode.startswith("container:"):
            return self.store.dir(cspec.ipc_mode[10:])
        return None

    def _namespace_peers(self, cspec: shim_pb2.ContainerSpec) -> dict[str, str]:
        """kind -> namespace path of the running container that ipc_mode / pid_mode /
        uts_mode name ("container:<id>")."""
        out = {}
        for kind, mode in (("ipc", cspec.ipc_mode), ("pid", cspec.pid_mode),
                           ("uts", cspec.uts_mode)):
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
        """Read afresh from the container's files (what every verb decides on)."""
        cdir = self.existing(cid)
        generation = self.statuses.generation(cid)  # taken before the files are read
        current = status.read(cdir, Meta.read(cdir) or Meta(), self.monitors.alive(cdir))
        self.statuses.put(cid, generation, current)
        return current

    def runtime_spec(self, cid: str) -> str:
        """The bundle's config.json as it stands (Update rewrites its limits)."""
        cdir = self.existing(cid)
        try:
            return cdir.config.read_text()
        except OSError as exc:
            raise NotFound(f"container {cid}: no runtime spec ({exc.strerror})") from None

    def list(self) -> list[Status]:
        """Every container's status: the cached one where it is still true
        (statuscache.py), else read afresh."""
        ids = self.store.ids()
        out = []
        for cid, cached in zip(ids, self.statuses.get_many(
                [(cid, self.store.status_file(cid)) for cid in ids]), strict=True):
            if cached is not None:
                out.append(cached)
                continue
            with contextlib.suppress(NotFound):
                out.append(self.state(cid))
        return out

    def delete(self, cid: str, force: bool = False, remove_volumes: bool = False) -> Status:
        """Remove the container; its last status (after the kill, if forced)."""
        with self._lock(cid):
            cdir = self.existing(cid)
            current = self.state(cid)
            if current.status in ("running", "paused") and not force:
                raise FailedPrecondition(
                    f"cannot remove container {cid}: container is {current.status}: "
                    "stop the container before removing or force remove")
            runtime = self.runtime_of(cdir)
            if current.status != "stopped":
                with contextlib.suppress(FailedPrecondition):
                    runtime.kill(cid, signalmod.SIGKILL)
                if current.status == "paused":
                    with contextlib.suppress(FailedPrecondition):
                        runtime.resume(cid)  # the SIGKILL lands when thawed
                    self.statuses.invalidate(cid)
                if not self._wait_stopped(cid, time.monotonic() + 30, lambda: False):
                    raise FailedPrecondition(f"container {cid} did not stop after SIGKILL")
                current = self.state(cid)
            # The monitor ran `delete`; make sure, since it may have been killed.
            # All gone once the exit was recorded, if they lived in its pid namespace (not
            # when the monitor died first, nor with --pid host: the delete kills them).
            gone = cdir.read_status() is not None and (Meta.read(cdir) or Meta()).own_pid_ns
            self.destroy(cdir, runtime, remove_volumes, stopped=gone)
        with self._locks_guard:
            self._locks.pop(cid, None)
        get_logger(container=cid[:12]).info("deleted")
        return current

    def list_runtimes(self) -> tuple[builtins.list[RuntimeInfo], str]:
        infos = [RuntimeInfo(r.name, r.path, r.version()) for r in self.runtimes.available()]
        return infos, self.runtimes.default

    def restore(self) -> None:
        """Rediscover container dirs after a (re)start (liverestore.py)."""
        restore(self)
