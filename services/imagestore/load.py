"""`load`: images from a docker-archive (`docker save`, `muelle save`) or an OCI layout
archive (`skopeo copy ... oci-archive:`), already received into a local file.

Nothing in the archive is extracted: members are looked up by the names the index or
manifest.json give, read as streams, and committed through the content store, which
verifies every digest and size. Layers are then unpacked into snapshots and the image is
recorded last, like a pull. An OCI layout (``index.json``) is preferred when both are
present: it keeps the original manifest digests.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from muelle.types.v1 import types_pb2

from services.core.logging import get_logger
from services.imagestore.content import ContentStore
from services.imagestore.manifest import parse_config, parse_manifest, verify
from services.imagestore.metadata import ImageRecord, Metadata
from services.imagestore.registry_client import Content
from services.imagestore.snapshots import Snapshots
from services.imagestore.unpack import unpack
from vocab import digest as digestmod
from vocab import reference
from vocab.errors import InvalidArgument, Unavailable
from vocab.platform import host_arch

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEXES = ("application/vnd.oci.image.index.v1+json",
           "application/vnd.docker.distribution.manifest.list.v2+json")
_CHUNK = 1 << 20
_MAX_JSON = 16 << 20  # index.json, manifest.json, manifests and configs are small


@dataclass
class Loaded:
    image_id: str
    names: list[str] = field(default_factory=list)


@dataclass
class _Image:
    manifest: Content
    config: bytes
    names: list[str]
    # Archive member of a layer, by digest, when not at blobs/<alg>/<hex> (docker-archive).
    layer_paths: dict[str, str] = field(default_factory=dict)


class _Archive:
    """Read-only, name-addressed view of a tar (plain or compressed)."""

    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by close()
            self.members = {posixpath.normpath(m.name.lstrip("/")): m
                            for m in self.tar.getmembers()}
        except (tarfile.TarError, EOFError, OSError) as exc:
            # tarfile's "r:*" error lists every method tried, one per line: keep the gist.
            detail = str(exc).splitlines()[0].rstrip(":") if "\n" in str(exc) else str(exc)
            if "could not be opened" in detail:
                detail = "not a tar file (plain, gzip, bzip2 or xz)"
            raise InvalidArgument(f"not a valid image archive: {detail}") from None

    def close(self) -> None:
        self.tar.close()

    def has(self, name: str) -> bool:
        return posixpath.normpath(name) in self.members

    def member(self, name: str) -> tarfile.TarInfo:
        name = posixpath.normpath(name.lstrip("/"))
        for _ in range(8):  # docker save links shared layer.tar files
            m = self.members.get(name)
            if m is None:
                raise InvalidArgument(f"archive has no {name}")
            if m.isfile():
                return m
            if m.issym():
                name = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
            elif m.islnk():
                name = posixpath.normpath(m.linkname.lstrip("/"))
            else:
                raise InvalidArgument(f"archive member {name} is not a file")
        raise InvalidArgument(f"archive member {name}: too many links")

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(self.member(name))
        if f is None:
            raise InvalidArgument(f"archive member {name} is not a file")
        return f

    def read_json_bytes(self, name: str) -> bytes:
        m = self.member(name)
        if m.size > _MAX_JSON:
            raise InvalidArgument(f"archive member {name} is too large ({m.size} bytes)")
        with self.open(name) as f:
            return f.read()

    def chunks(self, name: str, offset: int) -> Iterator[bytes]:
        with self.open(name) as f:
            f.seek(offset)
            while chunk := f.read(_CHUNK):
                yield chunk


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None


def _blob_path(digest: str) -> str:
    algorithm, encoded = digestmod.validate(digest).split(":", 1)
    return f"blobs/{algorithm}/{encoded}"


def _name_of(annotations: Any) -> list[str]:
    if not isinstance(annotations, dict):
        return []
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = annotations.get(key)
        # A bare tag ("1", "latest") names no repository: the image loads untagged.
        if isinstance(value, str) and ("/" in value or ":" in value):
            try:
                ref = reference.parse(value)
            except InvalidArgument:
                continue
            if ref.tag and not ref.digest:
                return [ref.canonical]
    return []


def _describe_layer(archive: _Archive, name: str) -> dict[str, Any]:
    """A descriptor for a docker-archive layer file (hashed here: the archive has none)."""
    hasher = hashlib.sha256()
    size = 0
    head = b""
    for chunk in archive.chunks(name, 0):
        if not head:
            head = chunk[:4]
        hasher.update(chunk)
        size += len(chunk)
    media = DOCKER_LAYER_GZIP if head[:3] == b"\x1f\x8b\x08" else DOCKER_LAYER
    return {"mediaType": media, "size": size, "digest": f"sha256:{hasher.hexdigest()}"}


def _fetch(archive: _Archive, name: str) -> Callable[[int], Iterator[bytes]]:
    return lambda offset: archive.chunks(name, offset)


class Loader:
    def __init__(self, content: ContentStore, snapshots: Snapshots, metadata: Metadata,
                 commit_lock: threading.Lock) -> None:
        self.content = content
        self.snapshots = snapshots
        self.metadata = metadata
        self.commit_lock = commit_lock

    def load(self, path: Path) -> list[Loaded]:
        archive = _Archive(path)
        try:
            if archive.has("index.json"):
                images = self._oci(archive)
            elif archive.has("manifest.json"):
                images = self._docker(archive)
            else:
                raise InvalidArgument("not an image archive: no index.json or manifest.json")
            if not images:
                raise InvalidArgument("the archive holds no image")
            return [self._install(archive, img) for img in images]
        finally:
            archive.close()

    # -- formats -------------------------------------------------------------------------

    def _oci(self, archive: _Archive) -> list[_Image]:
        index = _json(archive.read_json_bytes("index.json"), "index.json")
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise InvalidArgument("index.json is not an image index")
        out: dict[str, _Image] = {}
        for desc in self._manifests(archive, index["manifests"], depth=0):
            data = archive.read_json_bytes(_blob_path(str(desc.get("digest"))))
            content = Content(str(desc.get("mediaType") or ""), str(desc["digest"]),
                              int(desc.get("size", -1)), data)
            verify(content)
            names = _name_of(desc.get("annotations"))
            if content.digest in out:
                out[content.digest].names += names
                continue
            manifest = parse_manifest(content)
            config = archive.read_json_bytes(_blob_path(manifest.config.digest))
            out[content.digest] = _Image(content, config, names)
        return list(out.values())

    def _manifests(self, archive: _Archive, descs: list[Any],
                   depth: int) -> Iterator[dict[str, Any]]:
        for desc in descs:
            if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
                raise InvalidArgument("index.json has an invalid descriptor")
            if desc.get("mediaType") in INDEXES:
                if depth > 2:
                    raise InvalidArgument("image indexes nested too deeply")
                nested = _json(archive.read_json_bytes(_blob_path(desc["digest"])),
                               f"index {desc['digest']}")
                kids = [d for d in nested.get("manifests", []) if isinstance(d, dict)
                        and (d.get("platform") or {}).get("architecture") in (None, host_arch()[0])]
                for kid in list(self._manifests(archive, kids[:1], depth + 1)):
                    yield {**kid, "annotations": desc.get("annotations") or
                           kid.get("annotations")}
            else:
                yield desc

    def _docker(self, archive: _Archive) -> list[_Image]:
        entries = _json(archive.read_json_bytes("manifest.json"), "manifest.json")
        if not isinstance(entries, list):
            raise InvalidArgument("manifest.json is not a list")
        out = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                    or not isinstance(entry.get("Layers"), list):
                raise InvalidArgument(f"manifest.json entry {i} is invalid")
            config = archive.read_json_bytes(entry["Config"])
            layers = []
            paths: dict[str, str] = {}
            for layer in entry["Layers"]:
                if not isinstance(layer, str):
                    raise InvalidArgument(f"manifest.json entry {i} has an invalid layer")
                layers.append(_describe_layer(archive, layer))
                paths[layers[-1]["digest"]] = layer
            doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                   "config": {"mediaType": DOCKER_CONFIG, "size": len(config),
                              "digest": digestmod.of_bytes(config)},
                   "layers": layers}
            raw = json.dumps(doc, separators=(",", ":")).encode()
            names = []
            for tag in entry.get("RepoTags") or []:
                try:
                    names.append(reference.parse(str(tag)).canonical)
                except InvalidArgument:
                    raise InvalidArgument(f"manifest.json: invalid tag {tag!r}") from None
            out.append(_Image(Content(DOCKER_MANIFEST, digestmod.of_bytes(raw), len(raw), raw),
                              config, names, paths))
        return out

    # -- install -------------------------------------------------------------------------

    def _install(self, archive: _Archive, img: _Image) -> Loaded:
        manifest = parse_manifest(img.manifest)
        if digestmod.of_bytes(img.config) != manifest.config.digest:
            raise InvalidArgument(f"config {manifest.config.digest}: content does not match")
        config = parse_config(img.config, len(manifest.layers))
        log = get_logger(image=manifest.config.digest)
        self.content.write(manifest.config.digest, img.config)
        for desc in manifest.layers:
            path = img.layer_paths.get(desc.digest) or _blob_path(desc.digest)
            self.content.ingest(desc.digest, desc.size, _fetch(archive, path))
        chain_ids = [digestmod.chain_id(config.diff_ids[: i + 1])
                     for i in range(len(config.diff_ids))]
        for i, desc in enumerate(manifest.layers):
            self._apply(desc, config.diff_ids[i], chain_ids[: i + 1])
        self.content.write(img.manifest.digest, img.manifest.data)
        blobs = list(dict.fromkeys([img.manifest.digest, manifest.config.digest,
                                    *(d.digest for d in manifest.layers)]))
        record = ImageRecord(
            id=manifest.config.digest, manifest_digest=img.manifest.digest,
            root_digest=img.manifest.digest, config_json=config.raw,
            platform=config.platform, diff_ids=config.diff_ids, chain_ids=chain_ids,
            blobs=blobs, size=sum(self.metadata.snapshot_size(c) or 0 for c in chain_ids),
            created=config.created)
        names = list(dict.fromkeys(img.names))
        with self.commit_lock:
            missing = [c for c in chain_ids if not self.snapshots.exists(c)]
            missing += [b for b in blobs if not self.content.has(b)]
            if missing:
                raise Unavailable(f"content removed during the load ({missing[0]}); retry")
            self.metadata.put_image(record, names)
        log.info("loaded", names=names)
        return Loaded(record.id, names)

    def _apply(self, desc: types_pb2.Descriptor, diff_id: str, chains: list[str]) -> None:
        lowers = self.snapshots.lowers(chains[:-1])

        def apply(dest: Path) -> int:
            with self.content.open(desc.digest) as blob:
                return unpack(blob, dest, diff_id, lowers)

        size = self.snapshots.create(chains[-1], chains[:-1], apply)
        if size is not None:
            self.metadata.put_snapshot(chains[-1], size)

