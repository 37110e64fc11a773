"""Container records in SQLite: the containers users see, by ID, ID prefix or name.

A record is inserted with ``ready = 0`` before the neighbours are asked to do anything
(so the name is reserved atomically) and marked ready (1) once the shim has created the
container. A removal marks it 2 (3: with its anonymous volumes) before it asks the shim,
and deletes it last. Records not ready, after a crash or a failed step, are finished by
removing what the container has left (Engine: restore, and retries until done).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2

from services.core import modes
from vocab.errors import AlreadyExists, InvalidArgument, NotFound, is_no_space, no_space

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    created TEXT NOT NULL,
    request BLOB NOT NULL,
    spec BLOB NOT NULL,
    entrypoint TEXT,
    cmd TEXT,
    runtime TEXT NOT NULL,
    auto_remove INTEGER NOT NULL,
    stop_signal TEXT NOT NULL,
    stop_timeout INTEGER NOT NULL,
    bundle TEXT NOT NULL DEFAULT '',
    ready INTEGER NOT NULL DEFAULT 0
)
"""
# The ready column: the container's place in its life.
CREATING, READY, REMOVING, REMOVING_VOLUMES = 0, 1, 2, 3

# Containers a commit has paused (Docker's default) until it resumes them: a gateway
# killed in between resumes them when it starts again.
_PAUSES = "CREATE TABLE IF NOT EXISTS commit_pauses (id TEXT PRIMARY KEY)"

_COLUMNS = ("id, name, image, image_id, created, request, spec, entrypoint, cmd, runtime, "
            "auto_remove, stop_signal, stop_timeout, bundle, ready")


@dataclass
class Record:
    id: str
    name: str
    image: str
    image_id: str
    created: str
    request: engine_pb2.CreateContainerRequest
    spec: shim_pb2.ContainerSpec
    entrypoint: list[str] | None
    cmd: list[str] | None
    runtime: str
    auto_remove: bool
    stop_signal: str
    stop_timeout: int
    bundle: str = ""
    ready: bool = False
    removing: bool = False  # a removal began (ready = 2 or 3) and has not finished
    remove_volumes: bool = False  # ... with the container's anonymous volumes (3)


@dataclass
class Listed:
    """What `ps` shows of a record: no create request to parse (Records.listed)."""

    id: str
    name: str
    image: str
    image_id: str
    created: str
    spec: shim_pb2.ContainerSpec


def conflict(name: str, owner: str) -> AlreadyExists:
    """Docker's error for a name in use."""
    return AlreadyExists(
        f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
        "You have to remove (or rename) that container to be able to reuse that name.")


def _join(values: list[str] | None) -> str | None:
    # NUL cannot occur inside an argv element, so it separates them unambiguously.
    return None if values is None else "\x00".join(values) + "\x00"


def _split(text: str | None) -> list[str] | None:
    return None if text is None else text.split("\x00")[:-1]


def _row(row: tuple) -> Record:  # type: ignore[type-arg]
    request = engine_pb2.CreateContainerRequest()
    request.ParseFromString(row[5])
    spec = shim_pb2.ContainerSpec()
    spec.ParseFromString(row[6])
    return Record(id=row[0], name=row[1], image=row[2], image_id=row[3], created=row[4],
                  request=request, spec=spec, entrypoint=_split(row[7]), cmd=_split(row[8]),
                  runtime=row[9], auto_remove=bool(row[10]), stop_signal=row[11],
                  stop_timeout=int(row[12]), bundle=row[13], ready=row[14] == READY,
                  removing=row[14] in (REMOVING, REMOVING_VOLUMES),
                  remove_volumes=row[14] == REMOVING_VOLUMES)


class Records:
    """Thread-safe store of container records in ``<state>/gateway.db``."""

    def __init__(self, state_dir: Path) -> None:
        modes.private_dir(state_dir)
        self._path = state_dir / "gateway.db"
        # Made 0600 before SQLite opens it (its -wal and -shm take the same mode); one
        # from an older version, 0644, is tightened with them.
        os.close(modes.open_private(self._path, append=True))
        modes.private_files(state_dir, "gateway.db*")
        self._db = sqlite3.connect(str(self._path), check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._db.execute(_PAUSES)
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The database file (healthstore.py keeps its table there too)."""
        return self._path

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Held while changing the table: a full disk is ResourceExhausted saying what
        was not recorded (each change is one statement: SQLite keeps all or nothing)."""
        with self._lock:
            try:
                yield
            except sqlite3.OperationalError as exc:
                if is_no_space(exc):
                    raise no_space(f"{what} ({self._path})", exc) from None
                raise

    def insert(self, rec: Record) -> None:
        """Add ``rec`` (not ready); AlreadyExists when its name is taken."""
        with self._writing(f"the record of container {rec.id}"):
            clash = self._db.execute("SELECT id FROM containers WHERE name = ?",
                                     (rec.name,)).fetchone()
            if clash:
                raise conflict(rec.name, clash[0])
            self._db.execute(
                f"INSERT INTO containers ({_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.id, rec.name, rec.image, rec.image_id, rec.created,
                 rec.request.SerializeToString(), rec.spec.SerializeToString(),
                 _join(rec.entrypoint), _join(rec.cmd), rec.runtime, int(rec.auto_remove),
                 rec.stop_signal, rec.stop_timeout, rec.bundle, int(rec.ready)))

    def rename(self, cid: str, name: str) -> None:
        """AlreadyExists when ``name`` is another container's."""
        with self._writing(f"the name of container {cid}"):
            clash = self._db.execute("SELECT id FROM containers WHERE name = ?",
                                     (name,)).fetchone()
            if clash:
                raise conflict(name, clash[0])
            self._db.execute("UPDATE containers SET name = ? WHERE id = ?", (name, cid))

    def update_spec(self, cid: str, spec: shim_pb2.ContainerSpec) -> None:
        with self._writing(f"the record of container {cid}"):
            self._db.execute("UPDATE containers SET spec = ? WHERE id = ?",
                             (spec.SerializeToString(), cid))

    def update_request(self, cid: str, request: engine_pb2.CreateContainerRequest) -> None:
        """The create request as inspect shows it, after `docker update` changed limits."""
        with self._writing(f"the record of container {cid}"):
            self._db.execute("UPDATE containers SET request = ? WHERE id = ?",
                             (request.SerializeToString(), cid))

    def name_taken(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT id FROM containers WHERE name = ?",
                                   (name,)).fetchone()
        return row[0] if row else None

    def mark_ready(self, cid: str, bundle: str) -> None:
        with self._writing(f"the record of container {cid}"):
            self._db.execute("UPDATE containers SET ready = 1, bundle = ? WHERE id = ?",
                             (bundle, cid))

    def mark_removing(self, cid: str, remove_volumes: bool) -> None:
        """A removal begins: the container is no longer listed; its record goes last."""
        with self._writing(f"the removal of container {cid}"):
            self._db.execute("UPDATE containers SET ready = ? WHERE id = ?",
                             (REMOVING_VOLUMES if remove_volumes else REMOVING, cid))

    def mark_kept(self, cid: str) -> None:
        """A removal that changed nothing (refused): listed again."""
        with self._writing(f"the record of container {cid}"):
            self._db.execute("UPDATE containers SET ready = 1 WHERE id = ? AND ready >= 2",
                             (cid,))

    def hold_pause(self, cid: str) -> None:
        with self._writing(f"the commit pause of container {cid}"):
            self._db.execute("INSERT OR IGNORE INTO commit_pauses VALUES (?)", (cid,))

    def release_pause(self, cid: str) -> None:
        with self._writing(f"the commit pause of container {cid}"):
            self._db.execute("DELETE FROM commit_pauses WHERE id = ?", (cid,))

    def held_pauses(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM commit_pauses")]

    def delete(self, cid: str) -> None:
        with self._writing(f"the removal of container {cid}'s record"):
            self._db.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def get(self, cid: str) -> Record | None:
        """The record with exactly this ID, ready or not."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM containers WHERE id = ?",
                                   (cid,)).fetchone()
        return _row(row) if row else None

    def all(self, include_unready: bool = False) -> list[Record]:
        """Every record, oldest first."""
        where = "" if include_unready else "WHERE ready = 1"
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM containers {where} ORDER BY created, rowid"
            ).fetchall()
        return [_row(r) for r in rows]

    def names(self) -> dict[str, str]:
        """ID -> name of every ready record (`stats`: no blob parsed per container)."""
        with self._lock:
            return dict(self._db.execute(
                "SELECT id, name FROM containers WHERE ready = 1").fetchall())

    def listed(self) -> list[Listed]:
        """Every ready record as `ps` shows it, newest first: one query, the create
        request (the larger blob) left unparsed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, image, image_id, created, spec FROM containers "
                "WHERE ready = 1 ORDER BY created DESC, rowid DESC").fetchall()
        out = []
        for row in rows:
            spec = shim_pb2.ContainerSpec()
            spec.ParseFromString(row[5])
            out.append(Listed(id=row[0], name=row[1], image=row[2], image_id=row[3],
                              created=row[4], spec=spec))
        return out

    def using_image(self, image_id: str) -> list[Record]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM containers WHERE image_id = ?",
                                    (image_id,)).fetchall()
        return [_row(r) for r in rows]

    def lookup(self, ref: str) -> Record:
        """By full ID, name ("/name" too) or unique ID prefix; docker's precedence."""
        if not ref:
            raise InvalidArgument("container name or ID must not be empty")
        name = ref[1:] if ref.startswith("/") else ref
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM containers WHERE ready = 1 AND (id = ? OR name = ?) "
                "ORDER BY id = ? DESC LIMIT 1", (ref, name, ref)).fetchone()
            if row is None and all(c in "0123456789abcdef" for c in ref):
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM containers WHERE ready = 1 AND id LIKE ? "
                    "LIMIT 2", (ref + "%",)).fetchall()
                if len(rows) > 1:
                    raise InvalidArgument(
                        f"multiple IDs found with provided prefix: {ref}")
                row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"No such container: {ref}")
        return _row(row)
