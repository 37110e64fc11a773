"""Layer snapshots keyed by chain ID, and container root filesystems on top of them.

Layout under the store root::

    snapshots/<hex of chain id>/fs     one layer's diff in overlayfs form (read-only)
    snapshots/.tmp-<random>/fs         an unpack in progress (removed on failure/restart)
    containers/<id>/{upper,work}       a container's writable layer

A snapshot becomes visible by one rename after a complete unpack, so a directory under
``snapshots/`` with a plain hex name is always whole. Removal renames to a ``.trash-``
name first for the same reason. Shared layers are unpacked once (lock per chain ID).
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from muelle.types.v1 import types_pb2

from services.core.logging import get_logger
from services.imagestore.locks import KeyedLocks
from services.imagestore.topdir import spread_children
from vocab import digest as digestmod
from vocab.errors import AlreadyExists, InvalidArgument, NotFound

_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# apply(dest_dir) fills an empty directory with a layer and returns its size.
Apply = Callable[[Path], int]


def check_container_id(container_id: str) -> str:
    if not _CONTAINER_ID.match(container_id):
        raise InvalidArgument(f"invalid container ID {container_id!r}")
    return container_id


class Snapshots:
    def __init__(self, root: Path) -> None:
        self.snapshots = root / "snapshots"
        self.containers = root / "containers"
        self.snapshots.mkdir(parents=True, exist_ok=True)
        self.containers.mkdir(parents=True, exist_ok=True)
        # Each layer in its own inode group: fast file creation right after a removal
        # on an ext4 without a journal (topdir.py).
        spread_children(self.snapshots)
        self._locks = KeyedLocks()
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        # Unpacks and removals interrupted by a crash: never visible, safe to drop.
        for entry in self.snapshots.iterdir():
            if entry.name.startswith((".tmp-", ".trash-")):
                shutil.rmtree(entry, ignore_errors=True)
        for entry in self.containers.iterdir():
            if entry.name.startswith(".trash-"):
                shutil.rmtree(entry, ignore_errors=True)

    def fs(self, chain_id: str) -> Path:
        return self.snapshots / digestmod.validate(chain_id).split(":", 1)[1] / "fs"

    def exists(self, chain_id: str) -> bool:
        return self.fs(chain_id).is_dir()

    def ids(self) -> list[str]:
        return [f"sha256:{p.name}" for p in self.snapshots.iterdir()
                if not p.name.startswith(".")]

    def create(self, chain_id: str, parents: list[str], apply: Apply) -> int | None:
        """Unpack a layer as snapshot ``chain_id`` on top of ``parents`` (base first).

        Returns the layer size, or None when the snapshot already existed. On any error the
        partial unpack is removed and nothing becomes visible.
        """
        final = self.fs(chain_id).parent
        with self._locks.hold(chain_id):
            if final.is_dir():
                return None
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.snapshots))
            try:
                (tmp / "fs").mkdir(mode=0o755)
                size = apply(tmp / "fs")
                _sync_tree(tmp)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            get_logger(snapshot=chain_id).info("snapshot committed", size=size)
            return size

    def lowers(self, chain_ids: list[str]) -> list[Path]:
        """Snapshot dirs of a layer stack given base first, returned top first."""
        return [self.fs(c) for c in reversed(chain_ids)]

    def remove(self, chain_id: str) -> None:
        final = self.fs(chain_id).parent
        with self._locks.hold(chain_id):
            if not final.exists():
                return
            trash = self.snapshots / f".trash-{final.name}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)

    # -- container root filesystems ------------------------------------------------------

    def container_dir(self, container_id: str) -> Path:
        return self.containers / check_container_id(container_id)

    def prepare(self, container_id: str, chain_ids: list[str]) -> types_pb2.Mount:
        """Make the writable layer of ``container_id`` and return its overlay mount."""
        for chain in chain_ids:
            if not self.exists(chain):
                raise NotFound(f"snapshot {chain} is missing; pull the image again")
        cdir = self.container_dir(container_id)
        try:
            cdir.mkdir(mode=0o711)
        except FileExistsError:
            raise AlreadyExists(f"container {container_id} already has a rootfs") from None
        (cdir / "upper").mkdir(mode=0o755)
        (cdir / "work").mkdir(mode=0o700)
        return self.mount(container_id, chain_ids)

    def mount(self, container_id: str, chain_ids: list[str]) -> types_pb2.Mount:
        cdir = self.container_dir(container_id)
        lower = ":".join(str(p) for p in self.lowers(chain_ids))
        return types_pb2.Mount(type="overlay", source="overlay", options=[
            f"lowerdir={lower}", f"upperdir={cdir / 'upper'}", f"workdir={cdir / 'work'}",
        ])

    def remove_container(self, container_id: str) -> bool:
        cdir = self.container_dir(container_id)
        if not cdir.exists():
            return False
        trash = self.containers / f".trash-{cdir.name}"
        os.rename(cdir, trash)
        shutil.rmtree(trash)
        return True


def _sync_tree(path: Path) -> None:
    """Make a fresh unpack durable before it becomes visible: one syncfs(2) of its
    filesystem. An fsync per file costs ~0.1-0.2 ms each here (1 s for a 5,000-file
    layer, 0.04 s with syncfs); syncfs also flushes whatever else is dirty on that
    filesystem, which is the price of one call."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc().syncfs(fd) == 0:
            return
    finally:
        os.close(fd)
    _fsync_each(path)  # no syncfs (not Linux): the slow, exact way


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _fsync_each(path: Path) -> None:
    """fsync every file and directory of the tree."""
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
