"""The image store facade: what the servicer (or an in-process caller) uses.

Invariants: an image record exists only once all its blobs and snapshots are committed;
a snapshot or blob is deleted only when no image and no container stands on it. One lock
(``commit_lock``) serialises the record-commit step of pulls with deletions, so a pull
never records an image whose reused layers are being removed.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import zstandard
from muelle.types.v1 import types_pb2

from services.core import modes
from services.core.cancel import Cancel
from services.core.config import ImageStoreConfig
from services.core.logging import get_logger
from services.core.tarstream import stream_archive
from services.imagestore import changes
from services.imagestore.build import ImageBuilder, copy_stream, write_layer
from services.imagestore.check import CheckReport, check
from services.imagestore.content import ContentStore
from services.imagestore.imageconfig import commit_config, config_object, import_config
from services.imagestore.leases import Leases
from services.imagestore.load import Loaded, Loader
from services.imagestore.metadata import ImageRecord, Metadata
from services.imagestore.pull import Puller
from services.imagestore.push import Pusher
from services.imagestore.recover import recover
from services.imagestore.registry_client import RegistryClient
from services.imagestore.save import SaveItem, write_archive
from services.imagestore.snapshots import Snapshots, check_container_id
from services.imagestore.treetar import TreeTar, diff_entries, merged_entries
from services.imagestore.unpack import GZIP_ERRORS, decompress
from services.imagestore.usage import Usage, usage
from vocab import reference
from vocab.errors import FailedPrecondition, InvalidArgument, NotFound

# What an imported rootfs tar that does not decode raises.
IMPORT_ERRORS: tuple[type[Exception], ...] = (OSError, zstandard.ZstdError, *GZIP_ERRORS)


@dataclass
class Removed:
    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    reclaimed: int = 0  # bytes freed on disk (snapshots + blobs)


def _short(image_or_container_id: str) -> str:
    return image_or_container_id.removeprefix("sha256:")[:12]


class ImageStore:
    def __init__(self, root: Path, registry: RegistryClient,
                 limits: ImageStoreConfig | None = None) -> None:
        modes.private_dir(root)  # nothing of it is for other users (core/modes.py)
        self.root = root
        limits = limits or ImageStoreConfig()
        self.content = ContentStore(root, min_free=limits.min_free_bytes)
        self.snapshots = Snapshots(root)
        self.metadata = Metadata(root / "metadata.db")
        self.commit_lock = threading.Lock()
        self.puller = Puller(self.content, self.snapshots, self.metadata, registry,
                             self.commit_lock, limits)
        self.loader = Loader(self.content, self.snapshots, self.metadata, self.commit_lock)
        # Pulls in flight hold leases (leases.py); loads, imports and commits do not yet, so
        # while one runs, content nothing references is left alone altogether.
        self.leases = Leases(self.commit_lock)
        self._unleased = 0
        self.recovered = recover(self.content, self.snapshots, self.metadata)
        self.tmp = root / "tmp"  # archives being received; nothing there survives a restart
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        self.pusher = Pusher(self.content, self.metadata, registry, self.commit_lock)
        self.builder = ImageBuilder(self.content, self.snapshots, self.metadata,
                                    self.commit_lock)

    def close(self) -> None:
        self.metadata.close()

    # -- images --------------------------------------------------------------------------

    def pull(self, ref: str,
             platform: types_pb2.Platform | None = None, cancel: Cancel | None = None,
             credentials: types_pb2.RegistryCredentials | None = None,
             ) -> Generator[types_pb2.PullProgress, None, None]:
        lease = self.leases.new()
        try:
            yield from self.puller.pull(ref, lease, platform, cancel, credentials)
        finally:  # also when the client goes away (the generator is closed)
            lease.release()

    def push(self, ref: str, credentials: types_pb2.RegistryCredentials | None = None,
             ) -> Generator[types_pb2.PullProgress, None, None]:
        return self.pusher.push(ref, credentials)

    def tag(self, source: str, target: str) -> tuple[str, str]:
        """Point the name ``target`` at the image ``source``; returns (name, image ID)."""
        ref = reference.parse(target)
        if ref.digest:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
        with self.commit_lock:
            rec = self.get(source)
            self.metadata.put_image(rec, [ref.canonical])
        get_logger(image=rec.id).info("tagged", name=ref.canonical)
        return ref.canonical, rec.id

    def list_images(self) -> list[ImageRecord]:
        return self.metadata.list_images()

    def get(self, ref: str) -> ImageRecord:
        return self.metadata.resolve(ref)[0]

    def remove(self, ref: str, force: bool = False) -> Removed:
        """Untag by name (deleting the image when no tag remains) or delete by ID."""
        with self.commit_lock:
            rec, name = self.metadata.resolve(ref)
            users = self.metadata.containers_using(rec.id)
            out = Removed()
            if name is not None:
                drop = [name]
                if "@" not in name:
                    # A repository's digest names go with its last tag (as Docker does).
                    repo = reference.parse(name).repository
                    if not [t for t in rec.repo_tags if t != name
                            and reference.parse(t).repository == repo]:
                        drop += [d for d in rec.repo_digests
                                 if reference.parse(d).repository == repo]
                remaining = [n for n in rec.repo_tags + rec.repo_digests if n not in drop]
                if remaining or not users or force:
                    for n in drop:
                        self.metadata.delete_name(n)
                    out.untagged += drop
                if remaining:
                    return out
            elif len(rec.repo_tags) > 1 and not force:
                raise FailedPrecondition(
                    f"unable to delete {_short(rec.id)} (must be forced): image is "
                    f"referenced by {len(rec.repo_tags)} names")
            if users and not force:
                raise FailedPrecondition(
                    f"unable to delete {_short(rec.id)}: image is being used by container "
                    f"{_short(users[0])}")
            out.untagged += [n for n in self.metadata.names_of(rec.id) if n not in out.untagged]
            self._delete(rec, out)
            return out

    def prune(self, all: bool = False, keep: set[str] | None = None) -> Removed:
        """Delete dangling (untagged) images, or with ``all`` every image no container
        uses, but those of ``keep`` (the caller's: images with children); then blobs and
        snapshots nothing references (left by interrupted pulls). What a pull in flight
        holds (its lease) counts as referenced."""
        out = Removed()
        keep = keep or set()
        with self.commit_lock:
            in_use = self.metadata.used_images()
            for rec in self.metadata.list_images():
                if rec.id in in_use or rec.id in keep or (rec.repo_tags and not all):
                    continue
                out.untagged += rec.repo_tags + rec.repo_digests
                self._delete(rec, out)
            if self._unleased == 0:
                self._gc_unreferenced(out)
        get_logger().info("images pruned", deleted=len(out.deleted), reclaimed=out.reclaimed)
        return out

    def _delete(self, rec: ImageRecord, out: Removed) -> None:
        """Delete the record, then what nothing else uses. Caller holds commit_lock."""
        log = get_logger(image=rec.id)
        self.metadata.delete_image(rec.id)
        out.deleted.append(rec.id)
        layers = self._gc_chains(rec.chain_ids, out)
        used = self._used_blobs()
        for blob in rec.blobs:
            if blob not in used:
                self._delete_blob(blob, out)
        log.info("image deleted", layers=layers)

    def _delete_blob(self, blob: str, out: Removed) -> None:
        try:
            out.reclaimed += self.content.size(blob)
        except NotFound:
            return
        self.content.delete(blob)

    def _used_chains(self) -> set[str]:
        """Chains an image, a container or a pull in flight stands on. Caller holds
        commit_lock."""
        return self.metadata.used_chains() | self.leases.chains()

    def _used_blobs(self) -> set[str]:
        return self.metadata.used_blobs() | self.leases.blobs()

    def _gc_chains(self, candidates: list[str], out: Removed) -> int:
        used = self._used_chains()
        gone = 0
        for chain in reversed(candidates):  # top first
            if chain not in used:
                out.reclaimed += self.metadata.snapshot_size(chain) or 0
                self.snapshots.remove(chain)
                self.metadata.delete_snapshot(chain)
                out.deleted.append(chain)
                gone += 1
        return gone

    def _gc_unreferenced(self, out: Removed) -> None:
        """Snapshots and blobs no image, container or lease references. Only when no
        load, import or commit is in flight (they hold no lease; their content is committed
        before their record). Caller holds commit_lock."""
        used = self._used_chains()
        orphans = [c for c in self.snapshots.ids() if c not in used]
        # Children before parents does not matter on disk: each snapshot is a whole dir.
        self._gc_chains(orphans, out)
        blobs = self._used_blobs()
        for blob in self.content.ids():
            if blob not in blobs:
                self._delete_blob(blob, out)

    # -- save and load -------------------------------------------------------------------

    def save(self, refs: list[str]) -> Iterator[bytes]:
        """The archive of ``refs`` (see save.py), in chunks. A name saves that tag; an ID
        saves the image with all its tags."""
        if not refs:
            raise InvalidArgument("name at least one image to save")
        items: dict[str, SaveItem] = {}
        for ref in refs:
            rec, name = self.metadata.resolve(ref)
            item = items.setdefault(rec.id, SaveItem(rec, []))
            names = [name] if name and "@" not in name else rec.repo_tags
            item.names += [n for n in names if n not in item.names]
        chosen = list(items.values())
        return stream_archive(lambda out: write_archive(self.content, chosen, out))

    def load(self, chunks: Iterable[bytes]) -> list[Loaded]:
        """Receive an archive into a temp file, then load the images it holds."""
        fd, name = tempfile.mkstemp(prefix="load-", dir=self.tmp)
        with self.commit_lock:
            self._unleased += 1
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            return self.loader.load(Path(name))
        finally:
            os.unlink(name)
            with self.commit_lock:
                self._unleased -= 1

    # -- export, import, commit ----------------------------------------------------------

    def _layers_of(self, container_id: str) -> tuple[str, list[str]]:
        """(image ID, [upper dir, snapshot dirs top first]) of a container's rootfs."""
        check_container_id(container_id)
        entry = self.metadata.get_container(container_id)
        upper = self.snapshots.container_dir(container_id) / "upper"
        if entry is None or not upper.is_dir():
            raise NotFound(f"no root filesystem for container {container_id}")
        return entry[0], [str(upper), *(str(p) for p in self.snapshots.lowers(entry[1]))]

    def changes(self, container_id: str) -> list[tuple[str, int]]:
        """`docker diff`: (path, kind) of what the container changed (changes.py)."""
        _, layers = self._layers_of(container_id)
        return changes.changes(layers[0], layers[1:])

    def container_layers(self, container_id: str) -> list[str]:
        """The container's writable layer and its image's layers, top first."""
        return self._layers_of(container_id)[1]

    def export(self, container_id: str) -> Iterator[bytes]:
        """The container's root filesystem as an uncompressed tar, in chunks."""
        _, layers = self._layers_of(container_id)

        def produce(out: io.RawIOBase) -> None:
            tar = TreeTar(out)  # type: ignore[arg-type]
            tar.write(merged_entries(layers))
            tar.close()

        get_logger(container=container_id).info("exporting rootfs")
        return stream_archive(produce)

    def import_image(self, chunks: Iterable[bytes], ref: str = "", message: str = "",
                     config_json: bytes = b"") -> tuple[ImageRecord, str]:
        """A one-layer image from a root filesystem tar (plain, gzip or zstd);
        ``config_json``: its "config" object (else an empty one)."""
        names = [reference.parse(ref).canonical] if ref else []
        if ref and reference.parse(ref).digest:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {ref}")
        config = config_object(config_json)  # refused before any byte is stored
        fd, name = tempfile.mkstemp(prefix="import-", dir=self.tmp)
        with self.commit_lock:
            self._unleased += 1
        layer = None
        try:
            with os.fdopen(fd, "w+b") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.seek(0)
                try:
                    layer = write_layer(self.tmp, copy_stream(decompress(f)))
                except IMPORT_ERRORS as exc:
                    raise InvalidArgument(f"not a valid root filesystem tar: {exc}") from None
            rec = self.builder.record(None, layer, import_config(message, config), names)
        finally:
            os.unlink(name)
            if layer is not None:
                layer.path.unlink(missing_ok=True)
            with self.commit_lock:
                self._unleased -= 1
        get_logger(image=rec.id).info("imported", names=names)
        return rec, names[0] if names else ""

    def commit(self, container_id: str, cfg: types_pb2.ImageConfig, ref: str = "",
               author: str = "", comment: str = "", created_by: str = "",
               container: str = "", config_json: bytes = b"",
               empty_if_unchanged: bool = False) -> tuple[ImageRecord, str]:
        """A new image: the container's image plus its writable layer as one more layer.
        The container is not paused: files written during the commit may be caught
        half-way (stop the container first for an exact snapshot). ``config_json``
        replaces the "config" made from ``cfg``; ``empty_if_unchanged``: an unchanged
        writable layer adds no layer, only an "empty_layer" history entry (a build's RUN)."""
        names = [reference.parse(ref).canonical] if ref else []
        if ref and reference.parse(ref).digest:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {ref}")
        image_id, layers = self._layers_of(container_id)
        parent = self.metadata.get_by_id(image_id)
        if parent is None:
            raise FailedPrecondition(f"the image of container {container_id} was removed; "
                                     "cannot commit on top of it")
        doc = commit_config(parent.config_json, cfg, author=author, comment=comment,
                            created_by=created_by, container=container or container_id)
        if config_json:
            doc["config"] = config_object(config_json)
        if empty_if_unchanged and next(diff_entries(layers[0]), None) is None:
            doc["history"][-1]["empty_layer"] = True
            rec = self.builder.record(parent, None, doc, names)
            get_logger(container=container_id, image=rec.id).info("committed, no change")
            return rec, names[0] if names else ""
        with self.commit_lock:
            self._unleased += 1
        layer = None
        try:
            def produce(out: IO[bytes]) -> None:
                tar = TreeTar(out)
                tar.write(diff_entries(layers[0]))
                tar.close()

            layer = write_layer(self.tmp, produce)
            rec = self.builder.record(parent, layer, doc, names)
        finally:
            if layer is not None:
                layer.path.unlink(missing_ok=True)
            with self.commit_lock:
                self._unleased -= 1
        get_logger(container=container_id, image=rec.id).info("committed", names=names)
        return rec, names[0] if names else ""

    # -- checks and usage ----------------------------------------------------------------

    def check(self) -> CheckReport:
        return check(self.content, self.snapshots, self.metadata)

    def usage(self) -> Usage:
        with self.commit_lock:
            return usage(self.content, self.snapshots, self.metadata)

    # -- container root filesystems ------------------------------------------------------

    def prepare_rootfs(self, container_id: str, image: str) -> tuple[types_pb2.Mount, str]:
        check_container_id(container_id)
        with self.commit_lock:
            rec = self.get(image)
            mount = self.snapshots.prepare(container_id, rec.chain_ids)
            try:
                self.metadata.put_container(container_id, rec.id, rec.chain_ids)
            except BaseException:
                self.snapshots.remove_container(container_id)
                raise
        get_logger(container=container_id, image=rec.id).info("rootfs prepared")
        return mount, rec.id

    def remove_rootfs(self, container_id: str) -> None:
        check_container_id(container_id)
        cdir = self.snapshots.container_dir(container_id)
        if _mounted_upper(cdir / "upper"):
            raise FailedPrecondition(f"rootfs of container {container_id} is still mounted")
        with self.commit_lock:
            entry = self.metadata.get_container(container_id)
            self.snapshots.remove_container(container_id)
            self.metadata.delete_container(container_id)
            if entry:
                self._gc_orphans(entry[1])
        get_logger(container=container_id).info("rootfs removed")

    def _gc_orphans(self, chains: list[str]) -> None:
        # Chains of a force-removed image live on while containers use them.
        imaged = {c for rec in self.metadata.list_images() for c in rec.chain_ids}
        self._gc_chains([c for c in chains if c not in imaged], Removed())


def _mounted_upper(upper: Path) -> bool:
    """True when an overlay in our mount namespace still uses ``upper``."""
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        return False
    needle = f"upperdir={upper}"
    return any(needle + "," in line or needle + " " in line for line in mounts.splitlines())
