"""Pull orchestration: resolve through the registry service, fetch config and layers
(3 downloads at a time), unpack layers as they arrive, record the image last. Up to three
layers are unpacked at once, each while it still downloads (follow.py) or from its blob
when its download ended first, lowest first and not only the next in order: a snapshot may
be committed before the ones below it, and a hardlink to a lower layer's file waits until
those are committed (unpack's ``lowers_ready``). A layer whose streamed unpack failed is
unpacked again from its complete blob, in order. Progress is reported in layer order.

Progress events follow `docker pull`: "<tag>: Pulling from <repo>", per layer "Pulling fs
layer" / "Downloading" (a few updates) / "Verifying Checksum" / "Download complete" /
"Extracting" / "Pull complete" or "Already exists", then "Digest: sha256:...", a
"Status: ..." line and the PullResult. A failed pull records no image; blobs already
committed stay (a retry reuses them) and partial downloads are resumed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from muelle.types.v1 import types_pb2

from services.core import heap
from services.core.cancel import Cancel
from services.core.config import ImageStoreConfig
from services.core.logging import get_logger
from services.imagestore.content import ContentStore
from services.imagestore.follow import WAIT, FollowReader, Growing, StreamAborted
from services.imagestore.leases import Lease
from services.imagestore.manifest import parse_config, parse_manifest, verify
from services.imagestore.metadata import ImageRecord, Metadata
from services.imagestore.registry_client import RegistryClient, for_pull
from services.imagestore.snapshots import Snapshots
from services.imagestore.unpack import unpack
from vocab import digest as digestmod
from vocab import reference
from vocab.errors import Cancelled, DataLoss, ResourceExhausted, Unavailable

CONCURRENT_DOWNLOADS = 3  # Docker's default (SPECS.md §8)
# An image config is read whole into memory (manifests are capped at 4 MiB by the
# registry service); real ones are kilobytes, with a long history a few hundred.
MAX_CONFIG_BYTES = 16 << 20
_UPDATES_PER_LAYER = 4
# Pulls in progress: the last to end gives the heap back (core/heap.py).
_PULLS = heap.Busy()


def status(text: str) -> types_pb2.PullProgress:
    return types_pb2.PullProgress(status=text)


def layer_event(digest: str, phase: str, current: int = 0,
                total: int = 0) -> types_pb2.PullProgress:
    return types_pb2.PullProgress(layer=types_pb2.LayerProgress(
        digest=digest, phase=phase, current=current, total=total))


@dataclass
class _Event:
    index: int
    kind: str  # "progress", "done", "error"; "unpacked" (current: 1 if it worked)
    current: int = 0
    error: BaseException | None = None


class Puller:
    def __init__(self, content: ContentStore, snapshots: Snapshots, metadata: Metadata,
                 registry: RegistryClient, commit_lock: threading.Lock,
                 limits: ImageStoreConfig | None = None) -> None:
        self.content = content
        self.snapshots = snapshots
        self.metadata = metadata
        self.registry = registry
        self.commit_lock = commit_lock
        self.limits = limits or ImageStoreConfig()

    def pull(self, ref_text: str, lease: Lease,
             platform: types_pb2.Platform | None = None, cancel: Cancel | None = None,
             credentials: types_pb2.RegistryCredentials | None = None,
             ) -> Generator[types_pb2.PullProgress, None, None]:
        """Pull ``ref_text``; everything it fetches or reuses goes on ``lease`` before it
        is looked for, so no GC removes it until the caller releases the lease.
        ``cancel``, set when the caller goes away, stops every download at once (the
        partial downloads are kept: the next pull resumes them)."""
        # Set when the pull ends for any reason: downloads still running stop then.
        scope = Cancel()
        forget = cancel.on_set(scope.set) if cancel is not None else (lambda: None)
        try:
            registry = self.registry if credentials is None \
                else for_pull(self.registry, credentials)
            with _PULLS:
                yield from self._pull(ref_text, lease, platform, scope, registry)
        finally:
            forget()
            scope.set()

    def _pull(self, ref_text: str, lease: Lease, platform: types_pb2.Platform | None,
              cancel: Cancel, registry: RegistryClient,
              ) -> Generator[types_pb2.PullProgress, None, None]:
        ref = reference.parse(ref_text)
        log = get_logger(image=ref.canonical)
        resolved = registry.resolve(ref.canonical, platform)
        verify(resolved.root)
        verify(resolved.manifest)
        if ref.digest and resolved.root.digest != ref.digest:
            raise DataLoss(f"{ref.canonical} resolved to {resolved.root.digest}")
        manifest = parse_manifest(resolved.manifest)
        if manifest.config.size > MAX_CONFIG_BYTES:
            raise ResourceExhausted(
                f"the config {manifest.config.digest} of {resolved.repository} is declared "
                f"as {manifest.config.size} bytes, more than the limit of {MAX_CONFIG_BYTES}")
        self._check_sizes(resolved.repository, [manifest.config, *manifest.layers])
        lease.hold(blobs=[resolved.root.digest, resolved.manifest.digest,
                          manifest.config.digest, *(d.digest for d in manifest.layers)])
        yield status(f"{ref.tag or ref.digest}: Pulling from {ref.path}")

        def fetcher(desc: types_pb2.Descriptor) -> Callable[[int], Iterator[bytes]]:
            return lambda offset: iter(
                registry.fetch_blob(resolved.repository, desc, offset, cancel=cancel))

        def stop_if_cancelled(_: int) -> None:
            if cancel.is_set():
                raise Cancelled("pull cancelled")

        cfg_desc = manifest.config
        fetched = self.content.ingest(cfg_desc.digest, cfg_desc.size, fetcher(cfg_desc),
                                      stop_if_cancelled)
        config = parse_config(self.content.read(cfg_desc.digest), len(manifest.layers))
        chain_ids = [digestmod.chain_id(config.diff_ids[: i + 1])
                     for i in range(len(config.diff_ids))]
        lease.hold(chains=chain_ids)  # before _layers asks which snapshots exist
        existed = self.metadata.get_by_id(cfg_desc.digest) is not None

        fetched |= yield from self._layers(manifest.layers, config.diff_ids, chain_ids, fetcher,
                                           cancel)
        # A snapshot that exists satisfies its layer ("Already exists"), but it may have
        # come from another compression of the same diff_id (gzip vs zstd): then this
        # manifest's blob is not stored yet. Fetch it, so the image's blobs are all here
        # for save, push and check (without it the commit below found it "removed").
        for desc in manifest.layers:
            if not self.content.has(desc.digest, desc.size):
                fetched |= self.content.ingest(desc.digest, desc.size, fetcher(desc),
                                               stop_if_cancelled)

        # Keep the root (index) and manifest so push/save reproduce the digests.
        self.content.write(resolved.root.digest, resolved.root.data)
        self.content.write(resolved.manifest.digest, resolved.manifest.data)
        blobs = list(dict.fromkeys([resolved.root.digest, resolved.manifest.digest,
                                    cfg_desc.digest, *(d.digest for d in manifest.layers)]))
        record = ImageRecord(
            id=cfg_desc.digest, manifest_digest=resolved.manifest.digest,
            root_digest=resolved.root.digest, config_json=config.raw,
            platform=config.platform, diff_ids=config.diff_ids, chain_ids=chain_ids,
            blobs=blobs, size=sum(self.metadata.snapshot_size(c) or 0 for c in chain_ids),
            created=config.created)
        names = [ref.with_digest(resolved.root.digest).canonical]
        if ref.tag and not ref.digest:
            names.insert(0, ref.canonical)
        with self.commit_lock:
            # The lease kept GC away; check under the lock all the same, as the invariant
            # (no record without its content) must not rest on every GC path honouring it.
            missing = [c for c in chain_ids if not self.snapshots.exists(c)]
            missing += [b for b in blobs if not self.content.has(b)]
            if missing:
                raise Unavailable(f"content removed during the pull ({missing[0]}); retry")
            self.metadata.put_image(record, names)
        log.info("pulled", image_id=record.id, digest=resolved.root.digest)
        up_to_date = existed and not fetched
        yield status(f"Digest: {resolved.root.digest}")
        yield status(f"Status: {'Image is up to date' if up_to_date else 'Downloaded newer image'}"
                     f" for {ref.familiar}")
        yield types_pb2.PullProgress(result=types_pb2.PullResult(
            reference=ref.canonical, digest=resolved.root.digest, image_id=record.id,
            up_to_date=up_to_date))

    def _check_sizes(self, repository: str, blobs: list[types_pb2.Descriptor]) -> None:
        """Refuse, before any download, blobs declared larger than the configured caps."""
        limits = self.limits
        for desc in blobs:
            if desc.size > limits.max_blob_bytes:
                raise ResourceExhausted(
                    f"blob {desc.digest} of {repository} is declared as {desc.size} bytes, "
                    f"more than the limit of {limits.max_blob_bytes} "
                    "(imagestore.max_blob_bytes)")
        total = sum(desc.size for desc in blobs)
        if total > limits.max_pull_bytes:
            raise ResourceExhausted(
                f"the blobs of {repository} are declared as {total} bytes in all, more "
                f"than the limit of {limits.max_pull_bytes} (imagestore.max_pull_bytes)")

    def _layers(self, layers: list[types_pb2.Descriptor], diff_ids: list[str],
                chain_ids: list[str],
                fetcher: Callable[[types_pb2.Descriptor], Callable[[int], Iterator[bytes]]],
                cancel: Cancel) -> Generator[types_pb2.PullProgress, None, bool]:
        """Download missing layers concurrently, apply them in order; returns whether
        anything was fetched or unpacked (via StopIteration.value)."""
        n = len(layers)
        ready = [False] * n
        growing: dict[int, Growing] = {}
        streamed: set[int] = set()  # tried already: a second try waits for the blob
        streaming: set[int] = set()  # layers being unpacked from their downloads
        unpacked: set[int] = set()  # streamed layers done, reported once downloaded too
        # Set once a layer's snapshot is there: a layer unpacking above it waits for its
        # lowers only when it meets a hardlink to one of their files.
        committed = [threading.Event() for _ in range(n)]
        events: queue.Queue[_Event] = queue.Queue()
        cancelled = threading.Event()
        cancel.on_set(cancelled.set)
        # Wakes the wait for the next event below when the caller goes away.
        cancel.on_set(lambda: events.put(_Event(-1, "cancelled")))
        pending = 0
        work = False
        pool = ThreadPoolExecutor(CONCURRENT_DOWNLOADS, thread_name_prefix="pull")
        try:
            for i, desc in enumerate(layers):
                if self.snapshots.exists(chain_ids[i]):
                    ready[i] = True
                    committed[i].set()
                    yield layer_event(desc.digest, "Already exists")
                elif self.content.has(desc.digest, desc.size):
                    ready[i] = True
                else:
                    yield layer_event(desc.digest, "Pulling fs layer")
                    growing[i] = Growing()
                    pool.submit(self._download, i, desc, fetcher(desc), events, cancelled,
                                growing[i])
                    pending += 1
            applied = 0
            while applied < n:
                if applied in unpacked and ready[applied]:
                    work = True
                    size = layers[applied].size
                    yield layer_event(layers[applied].digest, "Extracting", size, size)
                    yield layer_event(layers[applied].digest, "Pull complete")
                    applied += 1
                    continue
                while applied < n and ready[applied] and applied not in streaming:
                    if applied in unpacked:
                        break  # streamed: reported at the top of the loop
                    if not self.snapshots.exists(chain_ids[applied]):
                        yield from self._apply(layers[applied], diff_ids[applied],
                                               chain_ids[: applied + 1])
                        work = True
                    committed[applied].set()
                    applied += 1
                if applied == n:
                    break
                if applied in unpacked and ready[applied]:
                    continue
                # Every layer still downloading is unpacked from its download, a few at a
                # time, lowest first; not only the next in order (which left the layers
                # that finished meanwhile to be unpacked one by one after the last byte).
                for i in sorted(growing):
                    if len(streaming) >= CONCURRENT_DOWNLOADS:
                        break
                    if i < applied or i in streamed:
                        continue
                    streamed.add(i)
                    streaming.add(i)
                    threading.Thread(
                        target=self._unpack_streaming, name=f"unpack-{i}",
                        args=(i, layers[i], diff_ids[i], chain_ids[: i + 1], growing[i],
                              cancelled, events, committed[:i], committed[i]),
                        daemon=True).start()
                ev = events.get()
                if ev.kind == "cancelled":
                    raise Cancelled("pull cancelled")
                digest = layers[ev.index].digest
                if ev.kind == "unpacked":
                    streaming.discard(ev.index)
                    if ev.current:  # else: unpacked from the blob once it is complete
                        unpacked.add(ev.index)
                elif ev.kind == "progress":
                    yield layer_event(digest, "Downloading", ev.current, layers[ev.index].size)
                elif ev.kind == "done":
                    work = True
                    ready[ev.index] = True
                    yield layer_event(digest, "Verifying Checksum")
                    yield layer_event(digest, "Download complete")
                else:
                    assert ev.error is not None
                    raise ev.error
        finally:
            cancelled.set()  # also when our consumer cancelled the stream
            pool.shutdown(wait=False, cancel_futures=True)
        return work

    def _download(self, index: int, desc: types_pb2.Descriptor,
                  fetch: Callable[[int], Iterator[bytes]], events: queue.Queue[_Event],
                  cancelled: threading.Event, growing: Growing) -> None:
        step = max(desc.size // _UPDATES_PER_LAYER, 1)
        last = [-step]

        def progress(current: int) -> None:
            if cancelled.is_set():
                raise Cancelled("pull cancelled")
            growing.advance(current)
            if current - last[0] >= step or current == desc.size:
                last[0] = current
                events.put(_Event(index, "progress", current))

        try:
            self.content.ingest(desc.digest, desc.size, fetch, progress)
        except BaseException as exc:  # handed to the pulling thread, which raises it
            growing.end(failed=True)
            if not cancelled.is_set():  # else: a consequence of the cancel, nobody waits
                events.put(_Event(index, "error", error=exc))
            return
        growing.end(failed=False)
        events.put(_Event(index, "done"))

    def _unpack_streaming(self, index: int, desc: types_pb2.Descriptor, diff_id: str,
                          chains: list[str], growing: Growing, cancelled: threading.Event,
                          events: queue.Queue[_Event], below: list[threading.Event],
                          done: threading.Event) -> None:
        """On its own thread: unpack a layer from its partial download as it grows, while
        the pull goes on reporting downloads and unpacking other layers. ``below`` are set
        as the lower layers' snapshots are committed: only a hardlink to a file of theirs
        waits for them. Reports "unpacked", current 0 if it could not (the pull then
        unpacks the complete blob in order: a real fault shows there)."""
        lowers = self.snapshots.lowers(chains[:-1])

        def lowers_ready() -> None:
            for event in below:
                while not event.wait(WAIT):
                    if cancelled.is_set():
                        raise StreamAborted("pull cancelled")

        def apply(dest: Path) -> int:
            blob: BinaryIO
            try:
                blob = FollowReader(self.content.partial_path(desc.digest), growing,
                                    cancelled)  # type: ignore[assignment]
            except StreamAborted:
                if not growing.ended or growing.failed:
                    raise
                # Downloaded (and verified) before this thread began: read the blob.
                blob = self.content.open(desc.digest)
            with blob:
                return unpack(blob, dest, diff_id, lowers, lowers_ready)

        ok = 0
        try:
            size = self.snapshots.create(chains[-1], chains[:-1], apply)
            if size is not None:
                self.metadata.put_snapshot(chains[-1], size)
            done.set()  # before the event: layers above may go on at once
            ok = 1
        except Exception as exc:  # noqa: BLE001 - any failure: the complete blob decides
            get_logger(layer=desc.digest).info("streamed unpack given up", reason=str(exc))
        events.put(_Event(index, "unpacked", ok))

    def _apply(self, desc: types_pb2.Descriptor, diff_id: str,
               chains: list[str]) -> Iterator[types_pb2.PullProgress]:
        yield layer_event(desc.digest, "Extracting", 0, desc.size)
        lowers = self.snapshots.lowers(chains[:-1])

        def apply(dest: Path) -> int:
            with self.content.open(desc.digest) as blob:
                return unpack(blob, dest, diff_id, lowers)

        size = self.snapshots.create(chains[-1], chains[:-1], apply)
        if size is not None:
            self.metadata.put_snapshot(chains[-1], size)
        yield layer_event(desc.digest, "Extracting", desc.size, desc.size)
        yield layer_event(desc.digest, "Pull complete")
