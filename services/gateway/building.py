"""The Build RPC: Dockerfile builds (services/builder) run by the gateway, which reaches
the image store and the shim only through their contracts.

Why here: a build orchestrates both sides — RUN is a container (the shim, with the same
defaults, network and security as `muelle run`, so the gateway's own create/attach/remove
path is reused), every other step is the image store's (AddFiles, Commit, ReadFiles) —
and orchestration is the gateway's job. The Dockerfile logic itself is a plain package
(services/builder) behind a small Backend interface, so it is tested without a server
and could move to its own component without change. The context is indexed straight
from the request stream (services/builder/tree.py): no file is made for it, its bytes
are kept in memory (past a limit, in one unlinked file under the gateway's state dir)
until the call ends, and read only by the COPY/ADD steps the cache misses.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from muelle.engine.v1 import engine_pb2
from muelle.images.v1 import images_pb2
from muelle.types.v1 import types_pb2

from services.builder import context as ctxmod
from services.builder.build import Builder, Options, RunFailed
from services.builder.cache import Cache
from services.builder.tree import Blobs
from services.core.logging import get_logger
from services.core.server import drain
from vocab import platform as platforms
from vocab.errors import InvalidArgument, MuelleError, NotFound

if TYPE_CHECKING:  # the engine imports this module (list_images): a type only, no cycle
    from services.gateway.engine import Engine

_CHUNK = 1 << 20


class GatewayBackend:
    """services.builder.build.Backend over the gateway's Engine and the image store."""

    def __init__(self, engine: Engine,
                 on_cancel: Callable[[Callable[[], None]], Any] | None = None) -> None:
        self.engine = engine
        self.images = engine.images
        self.on_cancel = on_cancel

    def base_image(self, ref: str, pull: bool, platform: str = ""
                   ) -> Generator[str, None, tuple[str, dict[str, Any]]]:
        want = platforms.parse(platform) if platform else None
        img = None
        if not pull:
            try:
                img = self.images.Get(images_pb2.GetImageRequest(reference=ref))
            except NotFound:
                img = None
            if img is not None and want is not None and not _is_platform(img, want):
                img = None  # stored for another platform: the wanted one is pulled
        if img is None:
            plat = types_pb2.Platform(os=want[0], architecture=want[1],
                                      variant=want[2]) if want else None
            for p in self.engine.pull(ref, plat, on_cancel=self.on_cancel):
                if p.HasField("status"):
                    yield p.status + "\n"
                elif p.HasField("result"):
                    yield f"Digest: {p.result.digest}\n"
            img = self.images.Get(images_pb2.GetImageRequest(reference=ref))
        if want is not None and not _is_platform(img, want):
            # A single-platform image (no index to choose from) of another platform.
            got = platforms.name(img.platform.os, img.platform.architecture,
                                 img.platform.variant)
            raise NotFound(f"{ref} has no image for {platforms.name(*want)}: the registry's "
                           f"is for {got} only")
        try:
            doc = json.loads(img.config_json)
        except ValueError:
            doc = {}
        config = doc.get("config") if isinstance(doc, dict) else None
        return img.id, dict(config) if isinstance(config, dict) else {}

    def add_files(self, parent: str, config: dict[str, Any], created_by: str, dest: str = "",
                  single_name: str = "", chown: str = "", chmod: str = "",
                  tar: IO[bytes] | None = None) -> str:
        header = images_pb2.AddFilesHeader(
            parent=parent, config_json=json.dumps(config).encode(), created_by=created_by,
            dest=dest, single_name=single_name, chown=chown, chmod=chmod)

        def messages() -> Iterator[images_pb2.AddFilesRequest]:
            yield images_pb2.AddFilesRequest(header=header)
            if tar is not None:
                while data := tar.read(_CHUNK):
                    yield images_pb2.AddFilesRequest(data=data)

        return str(self.images.AddFiles(messages()).id)

    def run(self, parent: str, config: dict[str, Any], cmd: list[str], env: list[str],
            created_by: str, network: str
            ) -> Generator[tuple[str, str], None, tuple[int, str]]:
        req = engine_pb2.CreateContainerRequest(
            image=parent, cmd=types_pb2.StringList(values=cmd),
            entrypoint=types_pb2.StringList(values=[""]), env=env,
            working_dir=str(config.get("WorkingDir") or ""), user=str(config.get("User") or ""),
            network_mode="" if network in ("", "default") else network)
        cid = self.engine.create(req).id
        try:
            yield "container", cid
            code = None
            for event in self.engine.attach(cid, start=True, on_cancel=self.on_cancel):
                if event.HasField("output"):
                    yield "output", event.output.data.decode("utf-8", "replace")
                elif event.HasField("exit"):
                    code = event.exit.exit_code
            if code is None:
                raise MuelleError("the build step's container ended without an exit status")
            if code != 0:
                return code, ""
            reply = self.images.Commit(images_pb2.CommitRequest(
                container_id=cid, config_json=json.dumps(config).encode(),
                created_by=created_by, container=cid, empty_layer_if_unchanged=True))
            return 0, str(reply.id)
        finally:
            try:
                self.engine.remove(cid, force=True)
            except MuelleError as exc:
                get_logger(container=cid[:12]).warning("build container not removed",
                                                       error=str(exc))

    def read_files(self, image: str, path: str, out: IO[bytes]) -> None:
        for chunk in self.images.ReadFiles(images_pb2.ReadFilesRequest(image=image, path=path)):
            out.write(chunk.data)

    def exists(self, image_id: str) -> bool:
        try:
            self.images.Get(images_pb2.GetImageRequest(reference=image_id))
        except NotFound:
            return False
        return True

    def tag(self, image_id: str, name: str) -> None:
        self.engine.tag_image(image_id, name)


def _is_platform(img: images_pb2.Image, want: tuple[str, str, str]) -> bool:
    p = img.platform
    return platforms.same((p.os, p.architecture, p.variant), want)


def _options(o: engine_pb2.BuildOptions) -> Options:
    if o.platform:
        try:
            os_name = platforms.parse(o.platform)[0]
        except ValueError as exc:
            raise InvalidArgument(f"--platform: {exc}") from None
        if os_name != "linux":
            raise InvalidArgument(f"--platform {o.platform}: muelle builds linux images only")
    return Options(dockerfile=o.dockerfile or "Dockerfile", tags=list(o.tags),
                   build_args=dict(o.build_args), target=o.target, no_cache=o.no_cache,
                   pull=o.pull, labels=dict(o.labels), network_mode=o.network_mode,
                   platform=o.platform)


def _state(engine: Engine) -> Path:
    return _state_of(engine.root_dir)


def _state_of(root_dir: str) -> Path:
    return Path(root_dir) / "gateway" if root_dir else Path(tempfile.gettempdir())


def intermediate_images(root_dir: str, stored: set[str]) -> set[str]:
    """Build step images that a later step of ``stored`` was made from (parents)."""
    return Cache(_state_of(root_dir) / "build-cache.json").intermediates(stored)


def kept_by_children(root_dir: str, staying: set[str]) -> set[str]:
    """The build step images that an image of ``staying`` was built from, transitively:
    an image prune keeps them, as Docker keeps images with children (and their cache
    hits with them)."""
    return Cache(_state_of(root_dir) / "build-cache.json").ancestors(staying)


def _disk_used(engine: Engine) -> int:
    usage = engine.images.DiskUsage(images_pb2.DiskUsageRequest())
    return int(usage.layers_size + usage.blobs_size)


def prune_build_cache(engine: Engine, all: bool) -> engine_pb2.PruneBuildCacheResponse:
    """`builder prune`: forget cached steps and remove their images where nothing else
    holds them (a tag, a container). Without ``all`` the steps of tagged images stay
    (Docker's "dangling" cache is what no image in use refers to)."""
    cache = Cache(_state(engine) / "build-cache.json")
    before = _disk_used(engine)
    forget: set[str] = set()
    deleted: list[str] = []
    removed: set[str] = set()
    for key, image_id in cache.items().items():
        try:
            img = engine.images.Get(images_pb2.GetImageRequest(reference=image_id))
        except NotFound:
            forget.add(key)  # its image is gone already
            continue
        if img.repo_tags:
            if all:
                forget.add(key)  # forgotten; the tagged image itself stays
            continue
        if engine.records.using_image(img.id):
            continue  # a container stands on it: step and image stay
        forget.add(key)
        if img.id in removed:
            continue
        try:
            engine.images.Remove(types_pb2.RemoveImageRequest(reference=img.id))
        except NotFound:
            continue
        except MuelleError as exc:  # kept by something else: the step is forgotten only
            get_logger(component="build").info("cached image kept", image=img.id,
                                                reason=str(exc))
            continue
        removed.add(img.id)
        deleted.append(img.id)
    cache.forget(forget)
    return engine_pb2.PruneBuildCacheResponse(
        deleted=deleted, space_reclaimed=max(0, before - _disk_used(engine)))


def build_image(engine: Engine, requests: Iterator[engine_pb2.BuildRequest],
                is_active: Callable[[], bool] = lambda: True,
                on_cancel: Callable[[Callable[[], None]], Any] | None = None,
                ) -> Iterator[engine_pb2.BuildEvent]:
    first = next(requests, None)
    try:
        if first is None or not first.HasField("options"):
            raise InvalidArgument("the first Build message must carry the build options")
        options = _options(first.options)
    except MuelleError:
        drain(requests)  # the context still arriving: see core.server's uploads
        raise
    state = _state(engine)
    (state / "builds").mkdir(parents=True, exist_ok=True, mode=0o700)
    blobs = Blobs(str(state / "builds"))
    log = get_logger(component="build")
    try:
        tree = ctxmod.index(io.BufferedReader(_ContextReader(requests)), blobs)
        for _ in requests:  # what follows the tar's end (padding): read, as before
            pass
        dockerfile = ctxmod.read_dockerfile(tree, options.dockerfile)
        ctxmod.apply_dockerignore(tree)
        builder = Builder(GatewayBackend(engine, on_cancel), Cache(state / "build-cache.json"),
                          tree, dockerfile, options,
                          cancelled=lambda: not is_active())
        steps = builder.build()
        try:
            while True:
                text = next(steps)
                if not first.options.quiet:
                    yield engine_pb2.BuildEvent(stream=text)
        except StopIteration as done:
            image_id = str(done.value)
        except RunFailed as exc:
            yield engine_pb2.BuildEvent(run_failed=engine_pb2.BuildRunFailure(
                command=exc.command, exit_code=exc.exit_code))
            raise
        log.info("built", image=image_id, tags=list(options.tags))
        yield engine_pb2.BuildEvent(image_id=image_id)
    finally:
        blobs.close()


class _ContextReader(io.RawIOBase):
    """The context tar as a file read from the Build requests' chunks (tarfile's stream
    mode reads it once, front to back, in small records: a view, never a copy, of each
    chunk's rest)."""

    def __init__(self, requests: Iterator[engine_pb2.BuildRequest]) -> None:
        self._requests = requests
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buffer:
            msg = next(self._requests, None)
            if msg is None:
                return 0
            self._buffer = memoryview(msg.context)
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n
