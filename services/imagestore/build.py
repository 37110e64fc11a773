"""Images made here rather than pulled: `import` (a rootfs tar becomes a one-layer image)
and `commit` (a container's writable layer on top of its image's layers).

A new layer is written once, gzip-compressed, into a temp file while both digests are
computed (diff ID over the tar, blob digest over the gzip); then it goes the way of a
pulled layer: committed to the content store (verified), unpacked into a snapshot
(diff ID verified again), and the image (config, manifest) recorded last, under the
commit lock, only if every blob and snapshot it needs is still there.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from services.imagestore.content import ContentStore
from services.imagestore.manifest import parse_config
from services.imagestore.metadata import ImageRecord, Metadata
from services.imagestore.snapshots import Snapshots
from services.imagestore.unpack import unpack
from vocab import digest as digestmod
from vocab.errors import DataLoss, InvalidArgument, Unavailable

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_CHUNK = 1 << 20
# Go's gzip.DefaultCompression (what Docker uses): level 9 costs much more for little.
_GZIP_LEVEL = 6


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class NewLayer:
    path: Path
    digest: str  # of the gzip blob
    size: int
    diff_id: str  # of the uncompressed tar


class _Hashing:
    """A write-only file that hashes and counts what passes on to ``inner``."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        self.inner.flush()


def write_layer(directory: Path, produce: Callable[[IO[bytes]], None]) -> NewLayer:
    """Run ``produce(out)``, which writes an uncompressed tar to ``out``, into a gzip temp
    file under ``directory``. The caller deletes ``NewLayer.path``."""
    fd, name = tempfile.mkstemp(prefix="layer-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            blob = _Hashing(f)
            # mtime=0 and no file name: the same tree gives the same blob.
            with gzip.GzipFile(filename="", mode="wb", fileobj=blob,
                               compresslevel=_GZIP_LEVEL, mtime=0) as gz:
                tar = _Hashing(gz)  # type: ignore[arg-type]
                produce(tar)  # type: ignore[arg-type]
    except BaseException:
        os.unlink(name)
        raise
    return NewLayer(Path(name), f"sha256:{blob.hasher.hexdigest()}", blob.size,
                    f"sha256:{tar.hasher.hexdigest()}")


def copy_stream(src: Any) -> Callable[[IO[bytes]], None]:
    """A ``produce`` that copies an already-made tar (``read()``-able)."""
    def produce(out: IO[bytes]) -> None:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
    return produce


def _file_chunks(path: Path) -> Callable[[int], Iterator[bytes]]:
    def fetch(offset: int) -> Iterator[bytes]:
        with open(path, "rb") as f:
            f.seek(offset)
            while chunk := f.read(_CHUNK):
                yield chunk
    return fetch


class ImageBuilder:
    def __init__(self, content: ContentStore, snapshots: Snapshots, metadata: Metadata,
                 commit_lock: threading.Lock) -> None:
        self.content = content
        self.snapshots = snapshots
        self.metadata = metadata
        self.commit_lock = commit_lock

    def record(self, parent: ImageRecord | None, layer: NewLayer | None, doc: dict[str, Any],
               names: list[str]) -> ImageRecord:
        """Store ``layer`` on top of ``parent`` (None: a base layer) and record the image
        whose config is ``doc`` (its rootfs is filled in here) under ``names``. Without a
        layer the image has the parent's layers and only a new config (a build step that
        wrote nothing; with no parent either, an image of no layers: `FROM scratch`)."""
        parent_layers: list[dict[str, Any]] = []
        manifest_type, layer_type = OCI_MANIFEST, OCI_LAYER_GZIP
        config_type = OCI_CONFIG
        if parent is not None:
            pm = json.loads(self.content.read(parent.manifest_digest))
            parent_layers = list(pm.get("layers") or [])
            if pm.get("mediaType") == DOCKER_MANIFEST:
                # Stay in the parent's dialect: registries refuse mixed media types.
                manifest_type, layer_type = DOCKER_MANIFEST, DOCKER_LAYER_GZIP
                config_type = str(pm["config"]["mediaType"])
        diff_ids = [*(parent.diff_ids if parent else []),
                    *([layer.diff_id] if layer is not None else [])]
        chain_ids = [digestmod.chain_id(diff_ids[: i + 1]) for i in range(len(diff_ids))]
        doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        raw_config = json.dumps(doc, separators=(",", ":")).encode()
        config = parse_config(raw_config, len(diff_ids))
        config_digest = digestmod.of_bytes(raw_config)
        manifest: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest,
                       "size": len(raw_config)},
            "layers": [*parent_layers, *([{"mediaType": layer_type, "digest": layer.digest,
                                           "size": layer.size}] if layer is not None else [])],
        }
        raw_manifest = json.dumps(manifest, separators=(",", ":")).encode()
        manifest_digest = digestmod.of_bytes(raw_manifest)

        if layer is not None:
            self._store_layer(layer, chain_ids)
        self.content.write(config_digest, raw_config)
        self.content.write(manifest_digest, raw_manifest)
        blobs = list(dict.fromkeys([manifest_digest, config_digest,
                                    *(str(d["digest"]) for d in manifest["layers"])]))
        rec = ImageRecord(
            id=config_digest, manifest_digest=manifest_digest, root_digest=manifest_digest,
            config_json=raw_config, platform=config.platform, diff_ids=diff_ids,
            chain_ids=chain_ids, blobs=blobs,
            size=sum(self.metadata.snapshot_size(c) or 0 for c in chain_ids),
            created=config.created)
        with self.commit_lock:
            missing = [c for c in chain_ids if not self.snapshots.exists(c)]
            missing += [b for b in blobs if not self.content.has(b)]
            if missing:
                raise Unavailable(f"content removed while the image was made ({missing[0]}); "
                                  "retry")
            self.metadata.put_image(rec, names)
        return rec

    def _store_layer(self, layer: NewLayer, chain_ids: list[str]) -> None:
        self.content.ingest(layer.digest, layer.size, _file_chunks(layer.path))
        lowers = self.snapshots.lowers(chain_ids[:-1])

        def apply(dest: Path) -> int:
            with self.content.open(layer.digest) as blob:
                try:
                    return unpack(blob, dest, layer.diff_id, lowers)
                except DataLoss as exc:
                    # Import's input is the user's tar: not a tar is a bad argument.
                    raise InvalidArgument(f"not a valid root filesystem tar: {exc}") from None

        size = self.snapshots.create(chain_ids[-1], chain_ids[:-1], apply)
        if size is not None:
            self.metadata.put_snapshot(chain_ids[-1], size)
