"""The gateway core: images and containers, orchestrated over the image store and the shim.

``Engine(records, images, shim, probes)`` takes the neighbours as objects with the
generated stubs' interface (``connect(...)`` stubs in production, plain fakes in tests),
and returns engine.v1 messages. Typed errors (vocab.errors) go up unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import platform
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.images.v1 import images_pb2
from muelle.registry.v1 import registry_pb2
from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.core.logging import get_logger
from services.gateway import build, check, healthcheck, mounts, names, options, system
from services.gateway.events import EventBus, Exits, ExitWatch
from services.gateway.healthmonitor import HealthMonitor
from services.gateway.healthstore import HealthStore
from services.gateway.merge import merge
from services.gateway.netlabels import NetworkLabels
from services.gateway.records import Record, Records, conflict
from services.gateway.status import now_rfc3339, status_text
from vocab import platform as platforms
from vocab.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MuelleError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from vocab.platform import host_arch
from vocab.version import API_VERSION, VERSION

# the neighbours' generated stubs, as connect() returns them (typing only)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from muelle.images.v1 import images_pb2_grpc
    from muelle.registry.v1 import registry_pb2_grpc
    from muelle.shim.v1 import shim_pb2_grpc

RUNNING = ("running", "paused")
WATCH_RETRY = 1.0
FINISH_RETRY = (0.2, 5.0)  # seconds: first and longest wait between tries to finish
WAIT_CONDITIONS = ("", "not-running", "next-exit", "removed")
WAIT_POLL = 0.05  # seconds between checks of a wait for "removed" or a stopped "next-exit"
KEPT_EXITS = 256  # exit statuses of auto-removed containers kept for waits on "removed"
WAIT_SLICE = 1.0  # seconds of one shim Wait of a client's wait (see Engine._wait_stopped)


def _state_name(shim_status: str) -> str:
    return "exited" if shim_status == "stopped" else shim_status


def image_summary(img: images_pb2.Image) -> engine_pb2.ImageSummary:
    return engine_pb2.ImageSummary(id=img.id, repo_tags=list(img.repo_tags),
                                   repo_digests=list(img.repo_digests), created=img.created,
                                   size=img.size)


class Engine:
    def __init__(self, records: Records, images: images_pb2_grpc.ImagesStub,
                 shim: shim_pb2_grpc.ShimStub,
                 probes: dict[str, Callable[[], str]] | None = None,
                 registry: registry_pb2_grpc.RegistryStub | None = None, root_dir: str = "",
                 userns_remap: list[types_pb2.IDMapping] | None = None,
                 network_labels: NetworkLabels | None = None) -> None:
        self.records = records
        self.network_labels = network_labels or NetworkLabels()
        self.userns_remap = userns_remap or []  # gateway.userns_remap, checked
        self.images = images
        self.shim = shim
        self.registry = registry  # for login/logout only; bytes never pass the gateway
        self.probes = probes or {}
        self.root_dir = root_dir
        self.log = get_logger(component="gateway")
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._attaching: dict[str, int] = {}
        self._watching: set[str] = set()
        self._retrying: set[str] = set()  # names of _until_done threads
        self.busy = check.Busy()  # creates and removals in flight, for system check
        self._exits: dict[str, Any] = {}  # cid -> last status of an auto-removed container
        self.events = EventBus()  # `docker events` (events.py)
        self.exits = Exits(self.events, self.container_attributes)
        self.events.on_first_subscriber = ExitWatch(shim, self.exits).ensure
        self.health = HealthMonitor(HealthStore(records.path), shim, self._health_event,
                                    self._may_restart)

    # ------------------------------------------------------------------ helpers

    def container_attributes(self, cid: str) -> dict[str, str]:
        """A container's event attributes, as Docker's: its labels, image and name."""
        rec = self.records.get(cid)
        if rec is None:
            return {}
        return {**rec.request.labels, "image": rec.image, "name": rec.name}

    def container_event(self, action: str, cid: str, **extra: str) -> None:
        self.events.publish("container", action, cid,
                            {**self.container_attributes(cid), **extra})

    def _health_event(self, cid: str, action: str, attributes: dict[str, str]) -> None:
        self.container_event(action, cid, **attributes)  # a probe's, as dockerd's

    def _may_restart(self, cid: str) -> bool:
        """A restart policy may start the stopped ``cid`` again (its health monitor
        keeps looking)."""
        rec = self.records.get(cid)
        return rec is not None and rec.spec.restart_policy not in ("", "no")

    def _lock(self, cid: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(cid, threading.RLock())

    def _links(self, req: engine_pb2.CreateContainerRequest, mode: str) -> list[str]:
        """--link NAME[:ALIAS] -> "NAME:ALIAS" for the shim (user networks only). Not
        looked up: as dockerd, a container that is not there (yet) is not an error; the
        alias names it while it is on a network this one shares."""
        out = []
        for entry in req.links:
            name, alias = options.parse_link(entry)
            if mode in ("host", "none") or mode.startswith("container:"):
                raise InvalidArgument(f"conflicting options: {mode} type networking can't be "
                                      "used with links. This would result in undefined "
                                      "behavior")
            if mode in ("", "bridge", "default"):
                raise InvalidArgument("links on the default bridge network (legacy links, "
                                      "with their environment variables) are not supported "
                                      "by muelle: use a user-defined network")
            out.append(f"{name}:{alias}")
        return out

    def _volumes_from(self, req: engine_pb2.CreateContainerRequest
                      ) -> list[types_pb2.VolumeMount]:
        """The mounts --volumes-from shares, in the order given."""
        out: list[types_pb2.VolumeMount] = []
        for entry in req.volumes_from:
            name, mode = mounts.parse_volumes_from(entry)
            try:
                source = self.records.lookup(name)
            except NotFound as exc:  # not 404: clients take that as a missing image
                raise InvalidArgument(exc.message) from None
            state = self._shim_state(source.id)
            if state is None:
                raise FailedPrecondition(f"container {name} is missing from the shim: its "
                                         "volumes are unknown")
            out += mounts.inherited(list(state.volume_mounts), mode)
        return out

    def _shim_state(self, cid: str, runtime_spec: bool = False
                    ) -> shim_pb2.ContainerStatus | None:
        try:
            return self.shim.State(shim_pb2.StateRequest(id=cid, runtime_spec=runtime_spec))
        except NotFound:
            return None

    # ------------------------------------------------------------------ version

    def version(self) -> engine_pb2.VersionResponse:
        components = {"gateway": VERSION}
        for name, probe in self.probes.items():
            try:
                components[name] = probe()
            except MuelleError as exc:
                components[name] = f"error: {exc}"
        uname = platform.uname()
        return engine_pb2.VersionResponse(
            version=VERSION, api_version=API_VERSION, os=uname.system.lower(),
            arch=host_arch()[0], kernel_version=uname.release, components=components)

    def info(self) -> engine_pb2.InfoResponse:
        return system.info(self.images, self.shim, self.records, self.root_dir)

    # ------------------------------------------------------------------ images

    def pull(self, reference: str, plat: types_pb2.Platform | None = None,
             on_cancel: Callable[[Callable[[], None]], object] | None = None,
             credentials: types_pb2.RegistryCredentials | None = None,
             ) -> Iterator[types_pb2.PullProgress]:
        """The image store's pull, relayed. ``on_cancel`` registers what to run when our
        caller goes away: the image store's call is cancelled then, not at its next
        progress message (a 1 TiB layer may send none for hours)."""
        request = types_pb2.PullRequest(reference=reference, credentials=credentials)
        if plat is not None:
            request.platform.CopyFrom(plat)
        call = self.images.Pull(request)
        if on_cancel is not None and hasattr(call, "cancel"):
            on_cancel(call.cancel)
        yield from call

    def list_images(self, all: bool = False) -> engine_pb2.ListImagesResponse:
        reply = self.images.List(images_pb2.ListImagesRequest())
        images = list(reply.images)
        if not all:  # a build's intermediate images, as Docker hides them (`images -a`)
            from services.gateway.building import intermediate_images

            hidden = intermediate_images(self.root_dir, {i.id for i in images})
            images = [i for i in images if i.repo_tags or i.id not in hidden]
        return engine_pb2.ListImagesResponse(images=[image_summary(i) for i in images])

    def _get_image(self, reference: str) -> images_pb2.Image:
        try:
            return self.images.Get(
                images_pb2.GetImageRequest(reference=reference))
        except NotFound:
            raise NotFound(f"No such image: {reference}") from None

    def inspect_image(self, reference: str) -> engine_pb2.ImageDetail:
        img = self._get_image(reference)
        return engine_pb2.ImageDetail(
            summary=image_summary(img), manifest_digest=img.manifest_digest,
            platform=img.platform, config=img.config, diff_ids=list(img.diff_ids),
            config_json=img.config_json, author=img.author)

    def remove_image(self, reference: str, force: bool) -> types_pb2.RemoveImageResponse:
        img = self._get_image(reference)
        users = self.records.using_image(img.id)
        # Untagging one of several names leaves the image in place for its containers.
        by_id = img.id.removeprefix("sha256:").startswith(reference.removeprefix("sha256:"))
        untag_only = len(img.repo_tags) > 1 and not by_id
        if users and not force and not untag_only:
            raise FailedPrecondition(
                f'conflict: unable to remove repository reference "{reference}" (must force) '
                f"- container {users[0].id[:12]} is using its referenced image "
                f"{img.id.removeprefix('sha256:')[:12]}")
        return self.images.Remove(types_pb2.RemoveImageRequest(reference=reference,
                                                                force=force))

    def prune_images(self, all: bool) -> types_pb2.PruneImagesResponse:
        # The images that stay (tagged ones unless `all`, those a container uses) keep
        # the build steps they were made from: Docker never prunes an image with children.
        from services.gateway.building import kept_by_children

        stored = self.images.List(images_pb2.ListImagesRequest()).images
        staying = {i.id for i in stored
                   if (i.repo_tags and not all) or self.records.using_image(i.id)}
        return system.prune_images(self.images, all,
                                   kept_by_children(self.root_dir, staying))

    def system_df(self) -> engine_pb2.SystemDfResponse:
        return system.system_df(self.images, self.shim, self.records)

    def system_check(self, repair: bool = False) -> engine_pb2.SystemCheckResponse:
        return check.system_check(self.images, self.shim, self.records, self.busy,
                                  repair, self._remove_leftover)

    def _remove_leftover(self, cid: str) -> None:
        """system check --repair: whatever any service keeps of ``cid`` goes, as `rm -f`
        would, with its anonymous volumes (nobody could reach them) unless it is a
        removal that was to keep them."""
        with self._lock(cid), self.busy.working(cid):
            rec = self.records.get(cid)
            errors = self._finish(rec) if rec is not None and not rec.ready \
                else self._clear(cid)
        if errors:
            raise FailedPrecondition("; ".join(errors))

    def save_images(self, references: list[str]) -> Iterator[types_pb2.ArchiveChunk]:
        return system.save_images(self.images, references)

    def load_images(self, chunks: Iterator[bytes]) -> types_pb2.LoadImagesResponse:
        return system.load_images(self.images, chunks)

    def export_container(self, ref: str) -> Iterator[types_pb2.ArchiveChunk]:
        return build.export_container(self.images, self.records, ref)

    def import_image(self, requests: Iterator[types_pb2.ImportRequest]
                     ) -> types_pb2.NewImage:
        return build.import_image(self.images, requests)

    def commit_container(self, req: engine_pb2.CommitContainerRequest
                         ) -> types_pb2.NewImage:
        rec = self.records.lookup(req.container)
        build.refuse_userns(rec, "commit")  # before a pause that would be for nothing
        state = self._shim_state(rec.id)
        kept = self.health.store.get(rec.id)
        health = kept.config if kept is not None else None  # the image gets it, as dockerd's
        if req.no_pause or state is None or state.status != "running":
            return build.commit_container(self.images, rec, req, health)
        # Docker's default: frozen while the image store reads its writable layer, so the
        # layer is one moment's (a file being written is not caught half-way). Recorded
        # first: a gateway killed meanwhile resumes it when it starts again.
        self.records.hold_pause(rec.id)
        try:
            self.shim.Pause(shim_pb2.PauseRequest(id=rec.id))
        except BaseException:
            self.records.release_pause(rec.id)
            raise
        self.health.halted(rec.id)
        try:
            return build.commit_container(self.images, rec, req, health)
        finally:
            if not self._resume_after_commit(rec.id):
                self._until_done(f"resume-{rec.id[:12]}",
                                 functools.partial(self._resume_after_commit, rec.id))

    def _resume_after_commit(self, cid: str) -> bool:
        """Thaw a container a commit froze; False if the shim cannot be asked now."""
        try:
            self.shim.Resume(shim_pb2.ResumeRequest(id=cid))
        except (FailedPrecondition, NotFound):
            pass  # not paused any more, or gone
        except MuelleError as exc:
            get_logger(container=cid[:12]).warning("resume after commit failed",
                                                   error=str(exc))
            return False
        self.records.release_pause(cid)
        return True

    # ------------------------------------------------------------------ create

    def tag_image(self, source: str, target: str) -> engine_pb2.TagImageResponse:
        self._get_image(source)  # "No such image: X", like docker
        reply = self.images.Tag(types_pb2.TagRequest(source=source, target=target))
        return engine_pb2.TagImageResponse(name=reply.name)

    def push(self, reference: str,
             credentials: types_pb2.RegistryCredentials | None = None,
             ) -> Iterator[types_pb2.PullProgress]:
        yield from self.images.Push(images_pb2.PushRequest(reference=reference,
                                                           credentials=credentials))

    def login(self, server: str, username: str, password: str) -> engine_pb2.LoginResponse:
        reply = self._registry().Login(registry_pb2.LoginRequest(
            server=server, username=username, password=password))
        return engine_pb2.LoginResponse(status=reply.status)

    def logout(self, server: str) -> engine_pb2.LogoutResponse:
        reply = self._registry().Logout(registry_pb2.LogoutRequest(server=server))
        return engine_pb2.LogoutResponse(server=reply.server)

    def _registry(self) -> registry_pb2_grpc.RegistryStub:
        if self.registry is None:
            raise Unavailable("this engine has no registry service configured")
        return self.registry

    def _pick_name(self, requested: str) -> str:
        if requested:
            name = names.validate_name(requested)
            owner = self.records.name_taken(name)
            if owner:
                raise conflict(name, owner)  # before any work is done
            return name
        for retry in range(20):
            name = names.generate_name(retry)
            if not self.records.name_taken(name):
                return name
        return names.generate_name(1) + names.new_id()[:6]

    def create(self, req: engine_pb2.CreateContainerRequest) -> engine_pb2.CreateContainerResponse:
        options.check_request(req)
        if req.HasField("healthcheck"):
            healthcheck.check(req.healthcheck)
        name = self._pick_name(req.name)
        img = self._get_image(req.image)
        platform_warnings = _check_platform(req, img)
        cid = names.new_id()
        merged = merge(img.config, req, cid)
        health = healthcheck.merge(
            img.config.healthcheck if img.config.HasField("healthcheck") else None,
            req.healthcheck if req.HasField("healthcheck") else None)
        spec, warnings = options.container_spec(req, merged, self.userns_remap)
        warnings[:0] = platform_warnings
        spec.volume_mounts.extend(mounts.container_mounts(req, img.config,
                                                          self._volumes_from(req)))
        if req.network_mode.startswith("container:"):
            # The shim knows IDs only: resolve a name or prefix like Docker.
            spec.network_mode = "container:" + self.records.lookup(req.network_mode[10:]).id
        for kind in ("ipc_mode", "pid_mode", "uts_mode"):
            mode = getattr(spec, kind)
            if mode.startswith("container:"):
                setattr(spec, kind, "container:" + self.records.lookup(mode[10:]).id)
        spec.network_aliases[:0] = [name]  # peers on a user network find it by name
        spec.links.extend(self._links(req, spec.network_mode))
        log = get_logger(container=cid[:12], image=req.image)
        rec = Record(
            id=cid, name=name, image=req.image, image_id=img.id, created=now_rfc3339(),
            request=req, spec=spec, entrypoint=merged.entrypoint, cmd=merged.cmd,
            runtime=req.runtime, auto_remove=req.auto_remove, stop_signal=merged.stop_signal,
            stop_timeout=req.stop_timeout if req.HasField("stop_timeout")
            else options.DEFAULT_STOP_TIMEOUT)
        with self.busy.working(cid):
            self.records.insert(rec)  # reserves the name; not visible until ready
            prepared = created = False
            try:
                if health is not None:
                    self.health.store.add(cid, health)
                # Each flag is set before its call: a call that fails may still have
                # taken effect (the reply lost to a killed service), so the undo asks.
                prepared = True
                rootfs = self.images.PrepareRootfs(
                    images_pb2.PrepareRootfsRequest(container_id=cid, image=img.id))
                created = True
                reply = self.shim.Create(shim_pb2.CreateRequest(
                    id=cid, spec=spec, rootfs=list(rootfs.mounts), runtime=req.runtime))
                self.records.mark_ready(cid, reply.bundle)
            except BaseException as exc:
                log.warning("create failed, undoing", error=str(exc))
                self._undo_create(cid, prepared=prepared, created=created)
                raise
        log.info("created", name=name)
        return engine_pb2.CreateContainerResponse(id=cid, warnings=warnings)

    def _undo_create(self, cid: str, *, prepared: bool = True, created: bool = True) -> None:
        """Undo what a create did; what cannot be undone now (a killed shim or image
        store) is tried again on a thread until it is gone."""
        if self._clear(cid, shim=created, rootfs=prepared, remove_volumes=True):
            self._finish_later(cid)

    def _clear(self, cid: str, *, shim: bool = True, rootfs: bool = True,
               remove_volumes: bool = True) -> list[str]:
        """Remove what is left of ``cid`` (a create or a removal that did not finish):
        its shim state, its rootfs, then its record, each step tried even if one before
        failed; the record only once the rest is gone, so until then the container stays
        known (to system check, to the retries, to the next start's restore). The errors
        of the steps that failed: none when all is gone."""
        log = get_logger(container=cid[:12])
        errors: list[str] = []
        if shim:
            try:
                self.shim.Delete(shim_pb2.DeleteRequest(id=cid, force=True,
                                                              remove_volumes=remove_volumes))
            except NotFound:
                pass
            except MuelleError as exc:
                log.warning("shim delete failed", error=str(exc))
                errors.append(str(exc))
        if rootfs and not errors:  # a rootfs the shim still has mounted cannot go
            try:
                self.images.RemoveRootfs(images_pb2.RemoveRootfsRequest(container_id=cid))
            except NotFound:
                pass
            except MuelleError as exc:
                log.warning("remove rootfs failed", error=str(exc))
                errors.append(str(exc))
        if not errors:
            try:
                self.records.delete(cid)
                self.health.forget(cid)
            except MuelleError as exc:
                log.warning("record removal failed", error=str(exc))
                errors.append(str(exc))
        return errors

    def _finish(self, rec: Record) -> list[str]:
        """Finish a create (by undoing it) or a removal that did not finish."""
        # A create's anonymous volumes go too: nobody ever saw the container.
        return self._clear(rec.id, remove_volumes=rec.remove_volumes or not rec.removing)

    def _finish_later(self, cid: str) -> None:
        def attempt() -> bool:
            with self._lock(cid), self.busy.working(cid):
                rec = self.records.get(cid)
                if rec is None or rec.ready:
                    return True
                if self._finish(rec):
                    return False
            get_logger(container=cid[:12]).info("finished what a crash left")
            return True

        self._until_done(f"finish-{cid[:12]}", attempt)

    def _until_done(self, name: str, attempt: Callable[[], bool]) -> None:
        """Call ``attempt`` on a thread until it returns True, waiting 0.2 s, then twice
        as long each time up to 5 s (a killed neighbour comes back). One thread per name."""
        with self._guard:
            if name in self._retrying:
                return
            self._retrying.add(name)

        def loop() -> None:
            wait = FINISH_RETRY[0]
            try:
                while True:
                    time.sleep(wait)
                    wait = min(wait * 2, FINISH_RETRY[1])
                    with contextlib.suppress(MuelleError):
                        if attempt():
                            return
            finally:
                with self._guard:
                    self._retrying.discard(name)

        threading.Thread(target=loop, name=name, daemon=True).start()

    # ------------------------------------------------------------------ lifecycle

    def start(self, ref: str) -> None:
        rec = self.records.lookup(ref)
        self._start(rec)

    def _start(self, rec: Record, attached: bool = False) -> None:
        """``attached``: an attach stream removes an auto-remove container itself (and
        sets a watcher going if it ends early), so none is started here."""
        try:  # docker: starting a running container is a no-op
            reply = self.shim.Start(shim_pb2.StartRequest(id=rec.id, unless_running=True))
        except NotFound:
            raise FailedPrecondition(f"container {rec.id} is missing from the runtime") from None
        except FailedPrecondition:
            state = self._shim_state(rec.id)  # a shim from before unless_running refuses it
            if state is not None and state.status in RUNNING:
                return
            raise
        if reply.was_running:
            return
        get_logger(container=rec.id[:12]).info("started")
        self.health.watch(rec.id)
        if rec.auto_remove and not attached:
            self._watch(rec.id)

    def attach(self, ref: str, start: bool = False, logs: bool = False,
               on_cancel: Callable[[Callable[[], None]], Any] | None = None,
               on_attached: Callable[[], None] | None = None, after_finished_at: str = "",
               ) -> Iterator[engine_pb2.AttachEvent]:
        """Output until the container stops, then its exit status (see engine.proto)."""
        rec = self.records.lookup(ref)
        cid = rec.id
        # Entries are time-stamped by the monitor, so "since now" taken before Start
        # catches every byte of this run and none of an earlier run.
        attached_at = now_rfc3339()
        since = "" if logs else attached_at
        with self._guard:
            self._attaching[cid] = self._attaching.get(cid, 0) + 1
        done = False
        stream: Any = None
        cancelled = threading.Event()

        def cancel() -> None:
            cancelled.set()
            if stream is not None:
                stream.cancel()

        if on_cancel is not None and on_cancel(cancel) is False:
            cancel()  # the call ended already (grpc's add_callback says so)
        try:
            if start:
                try:
                    self._start(rec, attached=True)
                except MuelleError:
                    if rec.auto_remove:
                        done = True  # removed here; no watcher needed
                        self._remove_quietly(cid)
                    raise
            elif after_finished_at or ((state := self._shim_state(cid)) is not None
                                       and state.status == "stopped"):
                # dockerd's attach to a stopped container replays its logs if asked, then
                # waits for its next run (the docker CLI's `start -a`: attach, then start)
                # and follows it from the end of the last one, so a run that started or
                # ended already is not missed.
                if logs:
                    for entry in self.shim.Logs(shim_pb2.LogsRequest(id=cid)):
                        yield engine_pb2.AttachEvent(output=entry)
                since = self._await_next_run(cid, cancelled.is_set, after_finished_at)
            stream = self.shim.Logs(shim_pb2.LogsRequest(id=cid, follow=True,
                                                               since=since))
            if cancelled.is_set():
                stream.cancel()
            if on_attached is not None:
                on_attached()  # io: stdin flows once output is followed (attach.py)
            for entry in stream:
                yield engine_pb2.AttachEvent(output=entry)
            if cancelled.is_set():
                return  # the client left: do not block a worker in Wait for nobody
            status = self._removed_after_exit(rec) if rec.auto_remove else None
            if status is None:
                status = self.shim.Wait(shim_pb2.WaitRequest(id=cid))
                if rec.auto_remove:
                    self._remember_exit(cid, status)
                    self._remove_quietly(cid)
            exit_event = engine_pb2.WaitContainerResponse(
                exit_code=status.exit_code, oom_killed=status.oom_killed, error=status.error)
            done = True
            yield engine_pb2.AttachEvent(exit=exit_event)
        finally:
            if stream is not None and not done:
                with contextlib.suppress(Exception):
                    stream.cancel()
            with self._guard:
                self._attaching[cid] -= 1
                if not self._attaching[cid]:
                    del self._attaching[cid]
            if not done and rec.auto_remove:
                self._watch(cid)  # the client went away: remove it when it stops

    def wait(self, ref: str, condition: str = "",
             cancelled: Callable[[], bool] = lambda: False,
             after_finished_at: str = "") -> engine_pb2.WaitContainerResponse:
        """See WaitContainerRequest.condition. "removed" answers with the exit status the
        container had, also when an auto-remove got to it first (kept in ``_exits``)."""
        if condition not in WAIT_CONDITIONS:
            raise InvalidArgument(f"invalid condition: {condition!r} (choose from "
                                  "not-running, next-exit, removed)")
        rec = self.records.lookup(ref)
        if condition == "next-exit":
            # a stopped one's next exit follows its next run
            self._await_next_run(rec.id, cancelled, after_finished_at)
        status: Any = None
        try:
            status = self._wait_stopped(rec.id, cancelled)
        except NotFound:
            if condition != "removed":
                raise
        if condition == "removed":
            # The record goes last in every removal; no event to sleep on, so poll.
            while self.records.get(rec.id) is not None and not cancelled():
                time.sleep(WAIT_POLL)
            with self._guard:
                status = self._exits.get(rec.id, status)
        if status is None:
            raise NotFound(f"No such container: {ref}")
        return engine_pb2.WaitContainerResponse(exit_code=status.exit_code,
                                                oom_killed=status.oom_killed,
                                                error=status.error)

    def _await_next_run(self, cid: str, cancelled: Callable[[], bool],
                        after_finished_at: str = "") -> str:
        """Until a stopped container ran again: the end of its last run (finished_at,
        the shim's clock), ``after_finished_at`` if the caller saw it earlier, the state's
        now otherwise. Done once the state shows another run: not stopped, or stopped with
        another finished_at (a run shorter than one poll: `docker start -a` of a container
        that exits at once was missed, and its wait for the next exit hung). Returns that
        end, from when the next run's output is ("" when it was not stopped)."""
        state = self._shim_state(cid)
        if state is None or (state.status != "stopped" and not after_finished_at):
            return after_finished_at
        last = after_finished_at or state.finished_at
        while state is not None and state.status == "stopped" and state.finished_at == last \
                and not cancelled():
            time.sleep(WAIT_POLL)
            state = self._shim_state(cid)
        return last

    def _wait_stopped(self, cid: str, cancelled: Callable[[], bool]) -> Any:
        """The shim's Wait in slices, so that a client that went away (docker run -d hangs
        up its wait after start) frees this worker within a slice, not at the exit."""
        while True:
            if cancelled():
                raise MuelleError("wait cancelled: the client went away")
            try:
                return self.shim.Wait(shim_pb2.WaitRequest(id=cid), timeout=WAIT_SLICE)
            except DeadlineExceeded:
                continue

    def _remember_exit(self, cid: str, status: Any) -> None:
        """Keep an auto-removed container's exit status for a wait on "removed"."""
        self.exits.exited(cid, status.exit_code)
        with self._guard:
            self._exits[cid] = status
            while len(self._exits) > KEPT_EXITS:
                self._exits.pop(next(iter(self._exits)))

    def stop(self, ref: str, timeout: int | None = None) -> None:
        rec = self.records.lookup(ref)
        state = self._shim_state(rec.id)
        if state is None:
            return  # docker: stopping a container that does not run succeeds
        # Also when exited or created: the shim must know, or a restart policy brings it
        # back (a restart is "created" for a moment; the shim leaves a never-started one).
        status = self.shim.Stop(shim_pb2.StopRequest(
            id=rec.id, signal=rec.stop_signal,
            timeout=rec.stop_timeout if timeout is None else timeout))
        self.exits.exited(rec.id, status.exit_code)
        self.health.halted(rec.id)
        get_logger(container=rec.id[:12]).info("stopped")

    def pause(self, ref: str) -> None:
        rec = self.records.lookup(ref)
        state = self._shim_state(rec.id)
        if state is not None and state.status == "paused":
            raise FailedPrecondition(f"Container {rec.id} is already paused")
        if state is None or state.status != "running":
            raise FailedPrecondition(f"Container {rec.id} is not running")
        self.shim.Pause(shim_pb2.PauseRequest(id=rec.id))
        self.health.halted(rec.id)

    def unpause(self, ref: str) -> None:
        rec = self.records.lookup(ref)
        state = self._shim_state(rec.id)
        if state is None or state.status != "paused":
            raise FailedPrecondition(f"Container {rec.id} is not paused")
        self.shim.Resume(shim_pb2.ResumeRequest(id=rec.id))

    def update(self, req: engine_pb2.UpdateContainerRequest) -> None:
        """New resource limits for a container, in the shim (cgroup and bundle)."""
        rec = self.records.lookup(req.container)
        with self._lock(rec.id):
            self.shim.Update(shim_pb2.UpdateRequest(
                id=rec.id, resources=options.update_resources(req)))
            shown = engine_pb2.CreateContainerRequest()
            shown.CopyFrom(rec.request)
            for field in ("memory", "memory_swap", "pids_limit", "nano_cpus", "cpu_shares",
                          "cpuset_cpus", "cpuset_mems"):
                if getattr(req, field):  # 0 / empty: unchanged
                    setattr(shown, field, getattr(req, field))
            if req.cpu_quota or req.cpu_period:
                shown.nano_cpus = 0  # a quota replaces --cpus (inspect shows no quota)
            self.records.update_request(rec.id, shown)

    def restart(self, ref: str, timeout: int | None = None) -> None:
        """`docker restart`: stop if running (stop signal, then SIGKILL), start again."""
        rec = self.records.lookup(ref)
        self.stop(rec.id, timeout)
        self._start(rec)

    def rename(self, ref: str, name: str) -> tuple[str, str]:
        """(ID, old name). The name on the container's networks stays the one it started
        with until it starts again (its /etc/hosts entries are written at start)."""
        rec = self.records.lookup(ref)  # dockerd: No such container before a bad name
        try:
            new = names.validate_name(name)
        except InvalidArgument:  # dockerd's words, with the name as it stores them
            raise InvalidArgument(
                "Error when allocating new name: Invalid container name "
                f"(/{name.removeprefix('/')}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            ) from None
        if new == rec.name:
            raise InvalidArgument("Renaming a container with the same name as its current "
                                  "name")
        with self._lock(rec.id):
            try:
                self.records.rename(rec.id, new)
            except AlreadyExists as exc:  # dockerd's words
                raise AlreadyExists(f"Error when allocating new name: {exc.message}") from None
        return rec.id, rec.name

    def update_restart_policy(self, ref: str, text: str) -> None:
        """`docker update --restart`: the shim's supervision and the record (inspect)."""
        rec = self.records.lookup(ref)
        probe = engine_pb2.CreateContainerRequest(restart_policy=text,
                                                  auto_remove=rec.auto_remove)
        policy = options.restart_policy(probe)  # Docker's checks (--rm conflicts)
        with self._lock(rec.id):
            self.shim.UpdateRestartPolicy(shim_pb2.UpdateRestartPolicyRequest(
                id=rec.id, restart_policy=policy))
            spec = shim_pb2.ContainerSpec()
            spec.CopyFrom(rec.spec)
            spec.restart_policy = policy
            self.records.update_spec(rec.id, spec)
        self.health.watch(rec.id)  # a stopped one it may now start again

    def stats(self, refs: list[str]) -> engine_pb2.ContainerStatsResponse:
        """Every container's counters from one shim call (docker stats)."""
        recs = [self.records.lookup(r) for r in refs]
        names = {r.id: r.name for r in recs} if recs else self.records.names()
        reply = self.shim.Stats(shim_pb2.StatsRequest(ids=[r.id for r in recs]))
        out = engine_pb2.ContainerStatsResponse()
        for st in reply.stats:
            if st.id not in names:
                continue  # the shim's, not this gateway's (another engine's container)
            st.name = names[st.id]  # the shim knows IDs only
            out.containers.append(st)
        return out

    def top(self, ref: str, ps_args: str = "") -> types_pb2.TopResponse:
        rec = self.records.lookup(ref)
        state = self._shim_state(rec.id)
        if state is None or state.status not in RUNNING:
            raise FailedPrecondition(f"Container {rec.id} is not running")
        reply: types_pb2.TopResponse = self.shim.Top(
            shim_pb2.TopRequest(id=rec.id, ps_args=ps_args))
        return reply

    def kill(self, ref: str, signal: str = "") -> None:
        rec = self.records.lookup(ref)
        if signal:
            options.check_signal(signal)
        state = self._shim_state(rec.id)
        if state is None or state.status not in RUNNING:
            raise FailedPrecondition(f"Cannot kill container: {ref}: Container {rec.id} is "
                                     "not running")
        self.shim.Kill(shim_pb2.KillRequest(id=rec.id, signal=signal or "SIGKILL"))

    def remove(self, ref: str, force: bool = False, remove_volumes: bool = False) -> str:
        rec = self.records.lookup(ref)
        self._remove(rec, force, remove_volumes)
        return rec.id

    def _remove(self, rec: Record, force: bool, remove_volumes: bool = False,
                shim_deleted: bool = False) -> None:
        with self._lock(rec.id), self.busy.working(rec.id):
            if self.records.get(rec.id) is None:
                raise NotFound(f"No such container: {rec.id}")
            # Forced (every --rm): no State call first; the shim kills what still runs.
            state = None if force or shim_deleted else self._shim_state(rec.id)
            if state is not None and state.status in RUNNING:
                raise FailedPrecondition(
                    f'cannot remove container "/{rec.name}": container is {state.status}: '
                    "stop the container before removing or force remove")
            # Marked first (no longer listed), deleted last: a removal cut short by a
            # crash or a failed step is finished later, never left half-done.
            self._mark_removing(rec.id, remove_volumes)
            if not shim_deleted:
                try:
                    with contextlib.suppress(NotFound):  # unknown to the shim: a failed create
                        self.shim.Delete(shim_pb2.DeleteRequest(
                            id=rec.id, force=force, remove_volumes=remove_volumes))
                except FailedPrecondition:
                    self.records.mark_kept(rec.id)  # refused (it runs): nothing changed
                    raise
                except BaseException:
                    self._finish_later(rec.id)  # it may be gone: the rest goes later
                    raise
            try:
                self.images.RemoveRootfs(images_pb2.RemoveRootfsRequest(container_id=rec.id))
                self.records.delete(rec.id)
                self.health.forget(rec.id)
            except BaseException:
                self._finish_later(rec.id)
                raise
        with self._guard:
            self._locks.pop(rec.id, None)
        get_logger(container=rec.id[:12]).info("removed")

    def _mark_removing(self, cid: str, remove_volumes: bool) -> None:
        try:
            self.records.mark_removing(cid, remove_volumes)
        except ResourceExhausted as exc:
            # A full disk: the removal is what frees space (a run --rm that filled it),
            # so it goes on unmarked, in rm's order (shim, rootfs, record).
            get_logger(container=cid[:12]).warning("removing unmarked", error=str(exc))

    def _removed_after_exit(self, rec: Record) -> shim_pb2.ContainerStatus | None:
        """--rm once the output ended: the shim deletes it unforced, with no State call
        first and no Wait (Delete answers with the last status), then the rootfs and the
        record go. None if it still runs or the shim refused: the caller waits, then
        removes as before."""
        with self._lock(rec.id), self.busy.working(rec.id):
            self._mark_removing(rec.id, remove_volumes=True)  # see _remove
            try:
                reply = self.shim.Delete(shim_pb2.DeleteRequest(
                    id=rec.id, remove_volumes=True))
            except FailedPrecondition:
                self.records.mark_kept(rec.id)
                return None
            except MuelleError:
                self._finish_later(rec.id)  # the shim may have deleted it
                return None
            if reply.HasField("status"):
                self._remember_exit(rec.id, reply.status)
            self._remove_quietly(rec.id, shim_deleted=True)
        if not reply.HasField("status"):  # a shim older than DeleteResponse.status
            return shim_pb2.ContainerStatus(
                id=rec.id, status="stopped", exit_code=255,
                error="the shim gave no exit status (it is older than the gateway)")
        return reply.status

    def _remove_quietly(self, cid: str, shim_deleted: bool = False) -> None:
        rec = self.records.get(cid)
        if rec is None:
            return
        attrs = self.container_attributes(cid)
        try:
            self._remove(rec, force=True, remove_volumes=True,  # --rm: like Docker
                         shim_deleted=shim_deleted)
            self.exits.forget(cid)
            self.events.publish("container", "destroy", cid, attrs)
        except NotFound:
            pass
        except MuelleError as exc:
            get_logger(container=cid[:12]).warning("auto-remove failed", error=str(exc))

    # ------------------------------------------------------------------ auto-remove

    def _watch(self, cid: str) -> None:
        """Remove ``cid`` once it stops, unless an attach stream is doing that."""
        with self._guard:
            if cid in self._watching:
                return
            self._watching.add(cid)
        threading.Thread(target=self._watcher, args=(cid,), name=f"autorm-{cid[:12]}",
                         daemon=True).start()

    def _watcher(self, cid: str) -> None:
        log = get_logger(container=cid[:12])
        try:
            while self.records.get(cid) is not None:
                try:
                    self._remember_exit(cid, self.shim.Wait(shim_pb2.WaitRequest(id=cid)))
                    break
                except NotFound:
                    break
                except Unavailable as exc:
                    log.warning("auto-remove: shim unavailable, retrying", error=str(exc))
                    time.sleep(WATCH_RETRY)
            with self._guard:
                attached = self._attaching.get(cid, 0) > 0
            if not attached:
                self._remove_quietly(cid)
        finally:
            with self._guard:
                self._watching.discard(cid)

    def restore(self) -> None:
        """After a gateway (re)start: undo half-done creates, finish half-done removals,
        thaw containers a commit froze, apply pending auto-removes."""
        for cid in self.records.held_pauses():
            if not self._resume_after_commit(cid):
                self._until_done(f"resume-{cid[:12]}",
                                 functools.partial(self._resume_after_commit, cid))
        for rec in self.records.all(include_unready=True):
            log = get_logger(container=rec.id[:12])
            try:
                if not rec.ready:
                    log.warning("finishing a removal that did not finish" if rec.removing
                                else "undoing a create that did not finish")
                    if self._finish(rec):
                        self._finish_later(rec.id)
                elif rec.auto_remove:
                    state = self._shim_state(rec.id)
                    if state is None or state.status == "stopped":
                        self._remove_quietly(rec.id)
                    elif state.status in RUNNING:
                        self._watch(rec.id)
            except MuelleError as exc:
                log.warning("restore failed", error=str(exc))
        # Health checks go on where they were (the monitor looks whether each runs); the
        # checks of containers removed meanwhile go.
        known = {rec.id for rec in self.records.all(include_unready=True)}
        for cid in self.health.store.ids():
            if cid in known:
                self.health.watch(cid)
            else:
                self.health.forget(cid)

    # ------------------------------------------------------------------ views

    def list(self, all: bool = False) -> engine_pb2.ListContainersResponse:
        states = {s.id: s for s in self.shim.List(shim_pb2.ListRequest()).containers}
        now = time.time()
        out = []
        for rec in self.records.listed():  # newest first, like docker ps
            st = states.get(rec.id)
            state = _state_name(st.status) if st else "exited"
            if not all and state not in RUNNING:
                continue
            status = status_text(state, st.started_at, st.finished_at, st.exit_code, now) \
                if st else "Dead"
            health = self.health.view(rec.id, st.status, st.started_at) \
                if st is not None else None
            if health is not None and state == "running":  # "Up 5 seconds (healthy)"
                status += healthcheck.status_suffix(health.status)
            # Every field in one constructor call and only non-empty repeated ones: each
            # extend or map copy is a call of its own, for each of 1000 rows.
            fields: dict[str, Any] = {}
            if rec.spec.annotations:
                fields["labels"] = dict(rec.spec.annotations)
            if health is not None:
                fields["health"] = health.status
            if st is not None:
                networks = st.networks
                fields["networks"] = [n.network for n in networks] or (
                    [st.network_mode] if st.network_mode in ("host", "none") else [])
                if st.ports:
                    fields["ports"] = st.ports
                if st.volume_mounts:
                    fields["mounts"] = [m.name or m.source for m in st.volume_mounts
                                        if m.type != "tmpfs"]
                if networks:
                    fields["network_endpoints"] = networks
            out.append(engine_pb2.ContainerSummary(
                id=rec.id, name=rec.name, image=rec.image, image_id=rec.image_id,
                command=" ".join(rec.spec.args), created=rec.created, state=state,
                status=status, network_mode=st.network_mode if st else rec.spec.network_mode,
                **fields))
        return engine_pb2.ListContainersResponse(containers=out)

    def inspect(self, ref: str, runtime_spec: bool = False) -> engine_pb2.ContainerDetail:
        rec = self.records.lookup(ref)
        st = self._shim_state(rec.id, runtime_spec)
        if st is None:
            state = engine_pb2.ContainerState(
                status="exited", error="the container is missing from the runtime")
        else:
            name = _state_name(st.status)
            state = engine_pb2.ContainerState(
                status=name, running=name in RUNNING, pid=st.pid, exit_code=st.exit_code,
                oom_killed=st.oom_killed, started_at=st.started_at,
                finished_at=st.finished_at, error=st.error)
            health = self.health.view(rec.id, st.status, st.started_at)
            if health is not None:
                state.health.CopyFrom(health)
        detail = engine_pb2.ContainerDetail(
            id=rec.id, name=rec.name, created=rec.created, image=rec.image,
            image_id=rec.image_id, args=list(rec.spec.args), state=state, config=rec.request,
            env=list(rec.spec.env), working_dir=rec.spec.cwd, user=rec.spec.user,
            hostname=rec.spec.hostname, runtime=(st.runtime if st else "") or rec.runtime,
            bundle=rec.bundle, stop_signal=rec.stop_signal, stop_timeout=rec.stop_timeout,
            labels=dict(rec.spec.annotations), auto_remove=rec.auto_remove,
            restart_count=st.restart_count if st is not None else 0,
            restart_policy=rec.spec.restart_policy)
        if st is not None:
            detail.mounts.extend(st.volume_mounts)
            detail.network_mode = st.network_mode
            detail.networks.extend(st.networks)
            detail.ports.extend(st.ports)
            detail.runtime_spec = st.runtime_spec
        kept = self.health.store.get(rec.id)
        if kept is not None:
            detail.healthcheck.CopyFrom(kept.config)
        if rec.entrypoint is not None:
            detail.entrypoint.values.extend(rec.entrypoint)
        if rec.cmd is not None:
            detail.cmd.values.extend(rec.cmd)
        return detail

    # ------------------------------------------------------------------ networks

    def create_network(self, name: str, subnet: str,
                       labels: dict[str, str] | None = None) -> types_pb2.NetworkInfo:
        info: types_pb2.NetworkInfo = self.shim.NetworkCreate(
            types_pb2.NetworkCreateRequest(name=name, subnet=subnet))
        self.network_labels.set(info.id, labels or {})
        return self._labelled(info)

    def _labelled(self, info: types_pb2.NetworkInfo) -> types_pb2.NetworkInfo:
        info.labels.update(self.network_labels.get(info.id))
        return info

    def list_networks(self) -> types_pb2.NetworkListResponse:
        reply = self.shim.NetworkList(shim_pb2.NetworkListRequest())
        networks = [self._labelled(n) for n in reply.networks]
        default = next((i for i, n in enumerate(networks) if n.builtin), len(networks) - 1)
        networks[default + 1:default + 1] = [_predefined(n) for n in PREDEFINED]
        return types_pb2.NetworkListResponse(networks=networks)

    def inspect_network(self, ref: str) -> types_pb2.NetworkInfo:
        for name in PREDEFINED:
            if ref == name or (len(ref) >= 3 and _predefined(name).id.startswith(ref)):
                return _predefined(name)
        info: types_pb2.NetworkInfo = self.shim.NetworkInspect(
            types_pb2.NetworkInspectRequest(network=ref))
        return self._labelled(info)

    def remove_network(self, ref: str) -> None:
        if ref in PREDEFINED:
            raise FailedPrecondition(f"{ref} is a pre-defined network and cannot be removed")
        info = self.shim.NetworkInspect(types_pb2.NetworkInspectRequest(network=ref))
        self.shim.NetworkRemove(types_pb2.NetworkRemoveRequest(network=info.id))
        self.network_labels.drop(info.id)

    def connect_network(self, network: str, container: str, aliases: Sequence[str],
                        links: Sequence[str] = ()) -> None:
        rec = self.records.lookup(container)
        pairs = [options.parse_link(entry) for entry in links]
        self.shim.NetworkConnect(shim_pb2.NetworkConnectRequest(
            id=rec.id, network=network, aliases=[rec.name, *aliases],
            links=[f"{name}:{alias}" for name, alias in pairs]))

    def disconnect_network(self, network: str, container: str) -> None:
        rec = self.records.lookup(container)
        self.shim.NetworkDisconnect(
            shim_pb2.NetworkDisconnectRequest(id=rec.id, network=network))

    def logs(self, req: engine_pb2.ContainerLogsRequest,
             on_cancel: Callable[[Callable[[], None]], Any] | None = None,
             ) -> Iterator[types_pb2.LogEntry]:
        rec = self.records.lookup(req.container)
        stream = self.shim.Logs(shim_pb2.LogsRequest(
            id=rec.id, follow=req.follow, tail=req.tail, since=req.since,
            stdout=req.stdout, stderr=req.stderr))
        if on_cancel is not None:
            on_cancel(stream.cancel)
        try:
            for entry in stream:
                if req.timestamps:
                    entry.data = _stamp(entry.data, entry.time)
                yield entry
        finally:
            with contextlib.suppress(Exception):
                stream.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs


def _stamp(data: bytes, when: str) -> bytes:
    """Prefix every line of ``data`` with its time, as `docker logs -t` does."""
    prefix = when.encode() + b" "
    lines = data.splitlines(keepends=True)
    return b"".join(prefix + line for line in lines)


def _check_platform(req: engine_pb2.CreateContainerRequest, img: images_pb2.Image) -> list[str]:
    """Docker's platform rules for create: a requested platform the stored image does not
    have is NOT_FOUND (the CLI then pulls that platform); without one, an image of another
    platform than the host's runs with a warning (it may need binfmt emulation)."""
    have = (img.platform.os, img.platform.architecture, img.platform.variant)
    if req.HasField("platform"):
        want = (req.platform.os, req.platform.architecture, req.platform.variant)
        if not platforms.same(want, have):
            raise NotFound(f"image with reference {req.image} was found but does not match "
                           f"the specified platform: wanted {platforms.name(*want)}, "
                           f"actual: {platforms.name(*have)}")
        return []
    host = ("linux", *host_arch())
    if img.platform.architecture and not platforms.same(host, have):
        return [f"The requested image's platform ({platforms.name(*have)}) does not match "
                f"the detected host platform ({platforms.name(*host)}) and no specific "
                "platform was requested"]
    return []


# `--network host|none`: listed and inspected as Docker's pre-defined networks (drivers
# host and null); the shim has no definition of them, they are modes of a container.
PREDEFINED = {"host": "host", "none": "null"}


def _predefined(name: str) -> types_pb2.NetworkInfo:
    return types_pb2.NetworkInfo(
        name=name, id=hashlib.sha256(f"muelle-network-{name}".encode()).hexdigest(),
        driver=PREDEFINED[name], builtin=True)
