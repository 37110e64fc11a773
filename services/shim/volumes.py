"""Local volumes: $MUELLE_ROOT/shim/volumes/<name>/{meta.json,_data/}.

meta.json holds the name, labels, creation time, whether the volume is anonymous, and the
IDs of the containers that use it (the reference count). A volume is in use while that
list is not empty; `remove` and `prune` refuse or skip it. One lock serialises every
change, and meta.json is replaced atomically, so a crash leaves a consistent record;
`forget_containers` drops references to containers that no longer exist (live restore).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.core import modes
from services.core.logging import get_logger
from services.shim.store import read_json, write_json
from vocab.errors import FailedPrecondition, InvalidArgument, NotFound

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass
class Volume:
    name: str
    mountpoint: str
    created_at: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    containers: list[str] = field(default_factory=list)


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or len(name) > 255:
        raise InvalidArgument(
            f'"{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
    return name


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


class VolumeStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        # Names are not listable, each volume's dir is 0700 (services/shim/access.py).
        modes.private_dir(self.root, modes.TRAVERSE_DIR)
        self._lock = threading.RLock()
        self.log = get_logger(component="volumes")

    def _dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def _read(self, name: str) -> Volume | None:
        meta = read_json(self._dir(name) / "meta.json")
        if not isinstance(meta, dict):
            return None
        return Volume(name=name, mountpoint=str(self._dir(name) / "_data"),
                      created_at=meta.get("created_at", ""),
                      labels=dict(meta.get("labels") or {}),
                      anonymous=bool(meta.get("anonymous")),
                      containers=list(meta.get("containers") or []))

    def _write(self, vol: Volume) -> None:
        write_json(self._dir(vol.name) / "meta.json", {
            "created_at": vol.created_at, "labels": vol.labels,
            "anonymous": vol.anonymous, "containers": vol.containers})

    # ---------------------------------------------------------------- API

    def create(self, name: str = "", labels: dict[str, str] | None = None,
               anonymous: bool = False) -> tuple[Volume, bool]:
        """The volume called ``name``, made if missing; and whether it was made now."""
        if not name:
            name, anonymous = secrets.token_hex(32), True
        with self._lock:
            existing = self._read(name)
            if existing is not None:
                return existing, False
            vdir = self._dir(name)
            modes.private_dir(vdir)
            (vdir / "_data").mkdir(exist_ok=True)
            vol = Volume(name=name, mountpoint=str(vdir / "_data"), created_at=_now(),
                         labels=dict(labels or {}), anonymous=anonymous)
            self._write(vol)  # the record last: a dir without meta.json is not a volume
        self.log.info("volume created", volume=name, anonymous=anonymous)
        return vol, True

    def get(self, name: str) -> Volume:
        vol = self._read(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        return vol

    def list(self) -> list[Volume]:
        out = []
        for entry in sorted(self.root.iterdir()):
            if NAME_RE.match(entry.name):
                vol = self._read(entry.name)
                if vol is not None:
                    out.append(vol)
        return out

    def remove(self, name: str, force: bool = False) -> int:
        """Delete the volume and its data; returns the bytes freed."""
        with self._lock:
            vol = self._read(name)
            if vol is None:
                if force:
                    return 0
                raise NotFound(f"get {name}: no such volume")
            if vol.containers:
                raise FailedPrecondition(
                    f"remove {name}: volume is in use - [{', '.join(vol.containers)}]")
            vdir = self._dir(name)
            size = _size(vdir / "_data")
            # Out of sight first, so a crash never leaves a half-deleted volume listed.
            trash = self.root / f".trash-{name}-{secrets.token_hex(4)}"
            os.rename(vdir, trash)
        shutil.rmtree(trash, ignore_errors=True)
        self.log.info("volume removed", volume=name)
        return size

    def size(self, name: str) -> int:
        """Bytes the volume's data uses on disk (0 when it is gone meanwhile)."""
        vol = self._read(name)
        return _size(Path(vol.mountpoint)) if vol is not None else 0

    def prune(self, all: bool = False) -> tuple[builtins.list[str], int]:
        """Remove unused volumes (anonymous only unless ``all``)."""
        removed: builtins.list[str] = []
        freed = 0
        with self._lock:
            for vol in self.list():
                if vol.containers or not (all or vol.anonymous):
                    continue
                freed += self.remove(vol.name)
                removed.append(vol.name)
        return removed, freed

    def acquire(self, name: str, cid: str) -> Volume:
        with self._lock:
            vol = self.get(name)
            if cid not in vol.containers:
                vol.containers.append(cid)
                self._write(vol)
            return vol

    def release(self, name: str, cid: str, remove_anonymous: bool = False) -> None:
        with self._lock:
            vol = self._read(name)
            if vol is None:
                return
            if cid in vol.containers:
                vol.containers.remove(cid)
                self._write(vol)
            if remove_anonymous and vol.anonymous and not vol.containers:
                self.remove(name)

    def forget_containers(self, known: set[str]) -> None:
        """Drop references held by containers that no longer exist."""
        with self._lock:
            for vol in self.list():
                alive = [c for c in vol.containers if c in known]
                if alive != vol.containers:
                    vol.containers = alive
                    self._write(vol)
            for entry in self.root.iterdir():
                if entry.name.startswith(".trash-"):
                    shutil.rmtree(entry, ignore_errors=True)
