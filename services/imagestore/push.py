"""Push orchestration: a stored tag's manifest, config and layers to its registry.

Per blob (up to 5 at a time, Docker's default): skip it when the repository has it
(StatBlob: "Layer already exists"), else mount it from another repository of the same
registry that the image was pulled from or pushed to ("Mounted from demo/busybox"), else
stream it from the content store to the registry service ("Pushing" with bytes, then
"Pushed"). The manifest goes last, byte for byte, so the digest is the one stored here.
Then "<tag>: digest: sha256:... size: N", as `docker push` ends.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from muelle.types.v1 import types_pb2

from services.core.logging import get_logger
from services.imagestore.content import ContentStore
from services.imagestore.manifest import DOCKER_MANIFEST, OCI_MANIFEST, parse_manifest
from services.imagestore.metadata import ImageRecord, Metadata
from services.imagestore.pull import layer_event, status
from services.imagestore.registry_client import Content, RegistryClient, for_pull
from vocab import reference
from vocab.errors import DataLoss, InvalidArgument, NotFound, Unavailable

CONCURRENT_UPLOADS = 5  # Docker's default (SPECS.md §8)
READ_SIZE = 1024 * 1024
_UPDATES_PER_LAYER = 4
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
# Foreign / non-distributable layers are never uploaded (SPECS.md §1).
_FOREIGN = ("nondistributable", "foreign")


class _Cancelled(Exception):
    """The push's consumer went away, or another upload failed: stop sending."""


@dataclass
class _Event:
    index: int
    kind: str  # "progress", "done", "error"
    current: int = 0
    phase: str = ""
    error: BaseException | None = None


def manifest_media_type(data: bytes) -> str:
    """The manifest's own mediaType, else OCI unless its config is a Docker config."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = {}
    media = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(media, str) and media:
        return media
    config = doc.get("config") if isinstance(doc, dict) else None
    if isinstance(config, dict) and config.get("mediaType") == DOCKER_CONFIG:
        return DOCKER_MANIFEST
    return OCI_MANIFEST


class Pusher:
    def __init__(self, content: ContentStore, metadata: Metadata, registry: RegistryClient,
                 commit_lock: threading.Lock) -> None:
        self.content = content
        self.metadata = metadata
        self.registry = registry
        self.commit_lock = commit_lock

    def push(self, ref_text: str,
             credentials: types_pb2.RegistryCredentials | None = None,
             ) -> Generator[types_pb2.PullProgress, None, None]:
        """Push ``ref_text``; with ``credentials``, every registry call of this push
        carries them (used for it only, never stored)."""
        if credentials is None or not credentials.ByteSize():
            return (yield from self._push(ref_text))
        # A view for this push alone: the upload threads read self.registry.
        view = copy.copy(self)
        view.registry = for_pull(self.registry, credentials)
        return (yield from view._push(ref_text))

    def _push(self, ref_text: str) -> Generator[types_pb2.PullProgress, None, None]:
        ref = reference.parse(ref_text)
        if ref.digest:
            raise InvalidArgument(f"cannot push a digest reference ({ref_text}): push a tag")
        rec = self._stored(ref)
        log = get_logger(image=ref.canonical)
        data = self.content.read(rec.manifest_digest)
        media = manifest_media_type(data)
        manifest = parse_manifest(Content(media, rec.manifest_digest, len(data), data))
        sources = self._mount_sources(rec, ref)
        yield status(f"The push refers to repository [{ref.repository}]")
        # Top layer first, as docker push lists them; the config is pushed silently.
        layers = list(reversed(manifest.layers))
        for desc in layers:
            yield layer_event(desc.digest, "Preparing")
        yield from self._blobs([*layers, manifest.config], ref.repository, sources,
                               silent=len(layers))
        digest = self.registry.push_manifest(ref.canonical, media, data)
        if digest != rec.manifest_digest:
            raise DataLoss(f"registry stored the manifest of {ref.familiar} as {digest}, "
                           f"expected {rec.manifest_digest}")
        with self.commit_lock:
            # Like docker: the pushed repository@digest becomes one of the image's names.
            if self.metadata.get_by_id(rec.id) is not None:
                self.metadata.put_image(rec, [ref.with_digest(digest).canonical])
        log.info("pushed", digest=digest, layers=len(layers))
        yield status(f"{ref.tag}: digest: {digest} size: {len(data)}")
        yield types_pb2.PullProgress(result=types_pb2.PullResult(
            reference=ref.canonical, digest=digest, image_id=rec.id))

    def _stored(self, ref: reference.Reference) -> ImageRecord:
        try:
            rec, name = self.metadata.resolve(ref.canonical)
        except NotFound:
            name = None
        if name != ref.canonical:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar}")
        return rec

    @staticmethod
    def _mount_sources(rec: ImageRecord, ref: reference.Reference) -> list[str]:
        """Other repositories of the same registry that hold this image's blobs."""
        out: list[str] = []
        for name in rec.repo_tags + rec.repo_digests:
            other = reference.parse(name)
            if other.domain == ref.domain and other.path != ref.path \
                    and other.path not in out:
                out.append(other.path)
        return out

    def _blobs(self, blobs: list[types_pb2.Descriptor], repo: str, sources: list[str],
               silent: int) -> Generator[types_pb2.PullProgress, None, None]:
        """Upload concurrently; events for the first ``silent`` blobs only (layers)."""
        events: queue.Queue[_Event] = queue.Queue()
        cancelled = threading.Event()
        pool = ThreadPoolExecutor(CONCURRENT_UPLOADS, thread_name_prefix="push")
        try:
            for i, desc in enumerate(blobs):
                pool.submit(self._upload, i, desc, repo, sources, events, cancelled)
            done = 0
            while done < len(blobs):
                ev = events.get()
                desc = blobs[ev.index]
                if ev.kind == "error":
                    assert ev.error is not None
                    raise ev.error
                if ev.kind == "done":
                    done += 1
                if ev.index >= silent:
                    continue
                if ev.kind == "progress":
                    yield layer_event(desc.digest, "Pushing", ev.current, desc.size)
                else:
                    yield layer_event(desc.digest, ev.phase)
        finally:
            cancelled.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def _upload(self, index: int, desc: types_pb2.Descriptor, repo: str, sources: list[str],
                events: queue.Queue[_Event], cancelled: threading.Event) -> None:
        try:
            phase = self._upload_one(index, desc, repo, sources, events, cancelled)
        except _Cancelled:
            return
        except BaseException as exc:  # handed to the pushing thread, which raises it
            if not cancelled.is_set():
                events.put(_Event(index, "error", error=exc))
            return
        events.put(_Event(index, "done", phase=phase))

    def _upload_one(self, index: int, desc: types_pb2.Descriptor, repo: str,
                    sources: list[str], events: queue.Queue[_Event],
                    cancelled: threading.Event) -> str:
        if any(word in desc.media_type for word in _FOREIGN):
            return "Skipped foreign layer"
        if self.registry.stat_blob(repo, desc.digest):
            return "Layer already exists"
        for source in sources:
            if cancelled.is_set():
                raise _Cancelled()
            if self.registry.mount_blob(repo, desc.digest, source):
                return f"Mounted from {source}"
        if not self.content.has(desc.digest, desc.size):
            raise Unavailable(f"blob {desc.digest} of the image is missing from the store; "
                              "pull the image again")
        step = max(desc.size // _UPDATES_PER_LAYER, 1)

        def progress(current: int) -> None:
            if cancelled.is_set():
                raise _Cancelled()
            events.put(_Event(index, "progress", current))

        self.registry.push_blob(repo, desc, self._read(desc.digest, step, progress))
        return "Pushed"

    def _read(self, digest: str, step: int,
              progress: Callable[[int], None]) -> Iterator[bytes]:
        sent = last = 0
        with self.content.open(digest) as blob:
            while chunk := blob.read(READ_SIZE):
                sent += len(chunk)
                if sent - last >= step:
                    last = sent
                    progress(sent)
                yield chunk
