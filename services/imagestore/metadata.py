"""Image metadata in SQLite: images, the names pointing at them, snapshot sizes and the
containers that use an image.

One connection shared by every thread behind a lock (WAL mode, synchronous=FULL), so a
killed service reopens a consistent database. Names are stored canonical
(vocab.reference): "busybox" is stored and found as
"docker.io/library/busybox:latest"; repo digests as "docker.io/library/busybox@sha256:...".
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from services.core import modes
from vocab import reference
from vocab.errors import InvalidArgument, NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,            -- config digest
    manifest_digest TEXT NOT NULL,
    root_digest TEXT NOT NULL,      -- what the reference resolved to (index or manifest)
    config_json BLOB NOT NULL,
    platform TEXT NOT NULL,         -- JSON {os, architecture, variant}
    diff_ids TEXT NOT NULL,         -- JSON list, base first
    chain_ids TEXT NOT NULL,        -- JSON list, base first; the last is the image's
    blobs TEXT NOT NULL,            -- JSON list of every blob digest the image holds
    size INTEGER NOT NULL,
    created TEXT NOT NULL,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY,          -- canonical tag or repo digest
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    is_digest INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS names_by_image ON names(image_id);
CREATE TABLE IF NOT EXISTS snapshots (
    chain_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    container_id TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    chain_ids TEXT NOT NULL          -- JSON list the rootfs is stacked on
);
"""

_FULL_ID = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")
_PREFIX = re.compile(r"^(?:sha256:)?([0-9a-f]{4,63})$")


@dataclass
class ImageRecord:
    id: str
    manifest_digest: str
    root_digest: str
    config_json: bytes
    platform: dict[str, str]
    diff_ids: list[str]
    chain_ids: list[str]
    blobs: list[str]
    size: int
    created: str
    added: float = 0.0
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)

    @property
    def chain_id(self) -> str:
        # An image of no layers (a Dockerfile's FROM scratch with only metadata) has none.
        return self.chain_ids[-1] if self.chain_ids else ""


class Metadata:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 before SQLite opens it (-wal and -shm take the same mode): see core/modes.
        os.close(modes.open_private(path, append=True))
        modes.private_files(path.parent, path.name + "*")
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- images --------------------------------------------------------------------------

    def put_image(self, rec: ImageRecord, names: list[str]) -> None:
        """Insert (or keep) ``rec`` and point ``names`` at it, atomically."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (rec.id, rec.manifest_digest, rec.root_digest, rec.config_json,
                 json.dumps(rec.platform), json.dumps(rec.diff_ids), json.dumps(rec.chain_ids),
                 json.dumps(rec.blobs), rec.size, rec.created, time.time()),
            )
            for name in names:
                db.execute("INSERT OR REPLACE INTO names VALUES (?,?,?)",
                           (name, rec.id, int("@" in name)))

    def _record(self, row: tuple) -> ImageRecord:  # type: ignore[type-arg]
        rec = ImageRecord(row[0], row[1], row[2], bytes(row[3]), json.loads(row[4]),
                          json.loads(row[5]), json.loads(row[6]), json.loads(row[7]),
                          row[8], row[9], row[10])
        for name, is_digest in self._db.execute(
                "SELECT name, is_digest FROM names WHERE image_id=? ORDER BY name", (rec.id,)):
            (rec.repo_digests if is_digest else rec.repo_tags).append(name)
        return rec

    def get_by_id(self, image_id: str) -> ImageRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
            return self._record(row) if row else None

    def list_images(self) -> list[ImageRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM images ORDER BY added DESC").fetchall()
            return [self._record(r) for r in rows]

    def names_of(self, image_id: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT name FROM names WHERE image_id=? ORDER BY name", (image_id,))]

    def delete_name(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM names WHERE name=?", (name,))

    def delete_image(self, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM names WHERE image_id=?", (image_id,))
            db.execute("DELETE FROM images WHERE id=?", (image_id,))

    # -- lookup --------------------------------------------------------------------------

    def resolve(self, text: str) -> tuple[ImageRecord, str | None]:
        """Find an image by name, ID, ``sha256:`` ID, unique ID prefix or name@digest.

        Returns the record and, when ``text`` named it by a stored name, that canonical
        name (so Remove knows whether to untag or delete). NotFound if nothing matches.
        """
        if not text:
            raise InvalidArgument("an image reference is required")
        full = _FULL_ID.match(text)
        if full:
            rec = self.get_by_id(f"sha256:{full.group(1)}")
            if rec:
                return rec, None
        found = self._by_name(text)
        if found:
            return found
        prefix = _PREFIX.match(text)
        if prefix:
            with self._lock:
                rows = self._db.execute("SELECT id FROM images WHERE id LIKE ?",
                                        (f"sha256:{prefix.group(1)}%",)).fetchall()
            if len(rows) > 1:
                raise InvalidArgument(f"image ID prefix {text!r} is ambiguous "
                                      f"({len(rows)} images match)")
            if rows:
                rec = self.get_by_id(rows[0][0])
                if rec:
                    return rec, None
        raise NotFound(f"no such image: {text}")

    def _by_name(self, text: str) -> tuple[ImageRecord, str] | None:
        try:
            ref = reference.parse(text)
        except InvalidArgument:
            return None
        if ref.digest:
            name = ref.with_digest(ref.digest).canonical
            with self._lock:
                row = self._db.execute("SELECT image_id FROM names WHERE name=?",
                                       (name,)).fetchone()
                if row is None:
                    # A manifest digest of an image pulled through an index.
                    for image_id, name_ in self._db.execute(
                            "SELECT i.id, n.name FROM images i JOIN names n ON n.image_id=i.id "
                            "WHERE i.manifest_digest=?", (ref.digest,)).fetchall():
                        if name_.startswith((ref.repository + ":", ref.repository + "@")):
                            row = (image_id,)
                            break
            rec = self.get_by_id(row[0]) if row else None
            return (rec, name) if rec else None
        name = ref.canonical
        with self._lock:
            row = self._db.execute("SELECT image_id FROM names WHERE name=?", (name,)).fetchone()
        rec = self.get_by_id(row[0]) if row else None
        return (rec, name) if rec else None

    # -- snapshots and containers --------------------------------------------------------

    def put_snapshot(self, chain_id: str, size: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO snapshots VALUES (?,?)", (chain_id, size))

    def snapshot_size(self, chain_id: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT size FROM snapshots WHERE chain_id=?",
                                   (chain_id,)).fetchone()
            return int(row[0]) if row else None

    def delete_snapshot(self, chain_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE chain_id=?", (chain_id,))

    def put_container(self, container_id: str, image_id: str, chain_ids: list[str]) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO containers VALUES (?,?,?)",
                       (container_id, image_id, json.dumps(chain_ids)))

    def get_container(self, container_id: str) -> tuple[str, list[str]] | None:
        with self._lock:
            row = self._db.execute("SELECT image_id, chain_ids FROM containers "
                                   "WHERE container_id=?", (container_id,)).fetchone()
            return (row[0], json.loads(row[1])) if row else None

    def delete_container(self, container_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM containers WHERE container_id=?", (container_id,))

    def containers_using(self, image_id: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT container_id FROM containers WHERE image_id=? ORDER BY container_id",
                (image_id,))]

    def used_chains(self) -> set[str]:
        """Chain IDs that some image or container still stands on."""
        with self._lock:
            out: set[str] = set()
            for (chains,) in self._db.execute(
                    "SELECT chain_ids FROM images UNION ALL SELECT chain_ids FROM containers"):
                out.update(json.loads(chains))
            return out

    def used_blobs(self) -> set[str]:
        with self._lock:
            out: set[str] = set()
            for (blobs,) in self._db.execute("SELECT blobs FROM images"):
                out.update(json.loads(blobs))
            return out

    def snapshot_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT chain_id FROM snapshots")]

    def snapshot_sizes(self) -> dict[str, int]:
        with self._lock:
            return {r[0]: int(r[1]) for r in
                    self._db.execute("SELECT chain_id, size FROM snapshots")}

    def list_containers(self) -> list[tuple[str, list[str]]]:
        """Every (container ID, chain IDs) whose rootfs the store keeps."""
        with self._lock:
            return [(r[0], json.loads(r[1])) for r in self._db.execute(
                "SELECT container_id, chain_ids FROM containers ORDER BY container_id")]

    def used_images(self) -> set[str]:
        """Image IDs some container stands on."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT image_id FROM containers")}
