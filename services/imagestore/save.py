"""`save`: images as one tar that is both a docker-archive and an OCI image layout.

The archive holds, byte for byte, the blobs the store keeps (manifest, config, layers as
pulled, so every digest is preserved)::

    oci-layout                  {"imageLayoutVersion": "1.0.0"}
    index.json                  an OCI index: one manifest descriptor per saved name,
                                annotated with the name (containerd's and the OCI's keys)
    blobs/sha256/<hex>          manifests, configs, layers
    manifest.json               docker-archive: Config, RepoTags, Layers (paths into blobs/)
    repositories                legacy docker-archive: {repo: {tag: <config hex>}}

This is what Docker 25+ writes; older `docker load` reads it too (it decompresses layers).
The tar is produced on a thread into a bounded queue, so a large save streams with
constant memory and stops when the reader goes away.
"""

from __future__ import annotations

import io
import json
import queue
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from services.imagestore.content import ContentStore
from services.imagestore.metadata import ImageRecord
from vocab import reference

CHUNK = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_EPOCH = 0  # fixed mtimes: the same images save to the same bytes


@dataclass
class SaveItem:
    image: ImageRecord
    names: list[str]  # canonical tags to record ("" entries not allowed)


def _blob_name(digest: str) -> str:
    algorithm, encoded = digest.split(":", 1)
    return f"blobs/{algorithm}/{encoded}"


def _manifest_media_type(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        return OCI_MANIFEST
    media = doc.get("mediaType") if isinstance(doc, dict) else None
    return media if isinstance(media, str) and media else OCI_MANIFEST


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, _EPOCH
    tar.addfile(info, io.BytesIO(data))


def write_archive(content: ContentStore, items: list[SaveItem], out: io.RawIOBase) -> None:
    index: list[dict[str, object]] = []
    docker: list[dict[str, object]] = []
    repositories: dict[str, dict[str, str]] = {}
    blobs: list[str] = []
    for item in items:
        rec = item.image
        raw_manifest = content.read(rec.manifest_digest)
        doc = json.loads(raw_manifest)
        layers = [d["digest"] for d in doc["layers"]]
        for digest in [rec.manifest_digest, rec.id, *layers]:
            if digest not in blobs:
                blobs.append(digest)
        desc = {"mediaType": _manifest_media_type(raw_manifest),
                "digest": rec.manifest_digest, "size": len(raw_manifest)}
        tags = []
        for name in item.names:
            ref = reference.parse(name)
            index.append({**desc, "annotations": {"io.containerd.image.name": ref.canonical,
                                                  "org.opencontainers.image.ref.name":
                                                      ref.tag}})
            tags.append(ref.familiar)
            repo = ref.familiar.rsplit(":", 1)[0]
            repositories.setdefault(repo, {})[ref.tag] = rec.id.split(":", 1)[1]
        if not item.names:
            index.append(desc)
        docker.append({"Config": _blob_name(rec.id), "RepoTags": tags or None,
                       "Layers": [_blob_name(d) for d in layers]})

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for d in ("blobs/", "blobs/sha256/"):
            info = tarfile.TarInfo(d.rstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _EPOCH
            tar.addfile(info)
        for digest in blobs:
            info = tarfile.TarInfo(_blob_name(digest))
            info.size, info.mode, info.mtime = content.size(digest), 0o644, _EPOCH
            with content.open(digest) as f:
                tar.addfile(info, f)
        _add_bytes(tar, "index.json", json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}).encode())
        _add_bytes(tar, "manifest.json", json.dumps(docker).encode())
        if repositories:
            _add_bytes(tar, "repositories", json.dumps(repositories).encode())


class _Cancelled(Exception):
    pass


class _QueueWriter(io.RawIOBase):
    def __init__(self, q: queue.Queue[bytes | BaseException | None],
                 cancelled: threading.Event) -> None:
        self.q = q
        self.cancelled = cancelled
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buf += data
        while len(self.buf) >= CHUNK:
            self._put(bytes(self.buf[:CHUNK]))
            del self.buf[:CHUNK]
        return len(data)

    def _put(self, item: bytes | BaseException | None) -> None:
        while True:
            if self.cancelled.is_set():
                raise _Cancelled()
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        if self.buf:
            self._put(bytes(self.buf))
        self._put(None)


def stream_archive(produce: Callable[[io.RawIOBase], None]) -> Iterator[bytes]:
    """Run ``produce(writer)`` on a thread; yield what it writes, in CHUNK pieces."""
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4)
    cancelled = threading.Event()
    writer = _QueueWriter(q, cancelled)

    def run() -> None:
        try:
            produce(writer)
            writer.finish()
        except _Cancelled:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side
            try:
                writer._put(exc)
            except _Cancelled:
                return

    thread = threading.Thread(target=run, name="save", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
