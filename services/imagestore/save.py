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
The tar is produced on a thread into a bounded queue (core/tarstream.py), so a large
save streams with constant memory and stops when the reader goes away.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass

from services.imagestore.content import ContentStore
from services.imagestore.metadata import ImageRecord
from vocab import reference

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
