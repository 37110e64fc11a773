"""The health checks of containers and what their probes found, kept in the gateway's
database (a table of its own beside the container records) and in memory.

A container's check (merged over its image's) is written at create and never changes.
Its health is kept per run, keyed by the run's start time: a state whose ``run`` is not
the container's current start time belongs to an earlier run, and the container is
"starting" again. Like dockerd, the health is written to disk only when its status
changes (a probe every few seconds would otherwise fsync as often); the streak and log
between changes live in memory, so a gateway restart may forget a few of them.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from muelle.types.v1 import types_pb2

from vocab.errors import is_no_space, no_space

_SCHEMA = """
CREATE TABLE IF NOT EXISTS health (
    id TEXT PRIMARY KEY,
    config BLOB NOT NULL,
    run TEXT NOT NULL DEFAULT '',
    state BLOB
)
"""


@dataclass
class Kept:
    """One container's check and, once it has run with it, its health in run ``run``."""

    config: types_pb2.Healthcheck
    run: str = ""
    health: types_pb2.Health | None = None


class HealthStore:
    def __init__(self, db_path: Path) -> None:
        self._path = db_path
        self._db = sqlite3.connect(str(db_path), check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._closed = False
        self._kept: dict[str, Kept] = {}
        for cid, config, run, state in self._db.execute(
                "SELECT id, config, run, state FROM health"):
            kept = Kept(types_pb2.Healthcheck.FromString(config), run)
            if state is not None:
                kept.health = types_pb2.Health.FromString(state)
            self._kept[cid] = kept

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    def _write(self, cid: str, sql: str, args: tuple[object, ...]) -> None:
        if self._closed:
            return  # a probe that ended as the gateway stops: its result is not kept
        try:
            self._db.execute(sql, args)
        except sqlite3.OperationalError as exc:
            if is_no_space(exc):
                raise no_space(f"the health check of container {cid} ({self._path})",
                               exc) from None
            raise

    def add(self, cid: str, config: types_pb2.Healthcheck) -> None:
        """The check of a container being created."""
        with self._lock:
            self._write(cid, "INSERT OR REPLACE INTO health (id, config) VALUES (?, ?)",
                        (cid, config.SerializeToString()))
            self._kept[cid] = Kept(config)

    def get(self, cid: str) -> Kept | None:
        """A copy: the caller may change it and ``save`` it."""
        with self._lock:
            kept = self._kept.get(cid)
            if kept is None:
                return None
            health = None
            if kept.health is not None:
                health = types_pb2.Health()
                health.CopyFrom(kept.health)
            return Kept(kept.config, kept.run, health)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._kept)

    def save(self, cid: str, run: str, health: types_pb2.Health, durable: bool) -> None:
        """The health of run ``run``; written to disk when ``durable`` (a new run or a
        new status), else kept in memory only."""
        with self._lock:
            kept = self._kept.get(cid)
            if kept is None:
                return  # removed meanwhile
            kept.run, kept.health = run, health
            if durable:
                self._write(cid, "UPDATE health SET run = ?, state = ? WHERE id = ?",
                            (run, health.SerializeToString(), cid))

    def forget(self, cid: str) -> None:
        with self._lock:
            if self._kept.pop(cid, None) is not None:
                self._write(cid, "DELETE FROM health WHERE id = ?", (cid,))
