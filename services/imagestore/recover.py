"""Start-up recovery: bring the store back to its invariants after a crash (kill -9,
power loss) at any point of a pull, an unpack or a removal.

Already handled where the state lives: ``Snapshots`` drops ``.tmp-*`` unpacks and
``.trash-*`` removals; SQLite (WAL, synchronous=FULL) rolls back a half-done transaction.
Here, what spans two of them:

- ingest partials that cannot be resumed: names that are not ``<alg>-<hex>.partial``,
  partials of blobs already committed (a crash between rename and cleanup), and partials
  untouched for ``INGEST_MAX_AGE`` (nobody is coming back for them);
- snapshot directories committed by a rename whose record was never written (a crash
  between the two), unless an image or container uses them: then the record is rebuilt;
- snapshot records whose directory is gone and that nothing uses.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from dataclasses import dataclass, field

from services.core.logging import get_logger
from services.imagestore.content import ContentStore
from services.imagestore.metadata import Metadata
from services.imagestore.snapshots import Snapshots

INGEST_MAX_AGE = 24 * 3600.0  # seconds; containerd expires stale ingests similarly
_PARTIAL = re.compile(r"^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})\.partial$")


@dataclass
class Recovered:
    ingests: list[str] = field(default_factory=list)       # partial files removed
    snapshots: list[str] = field(default_factory=list)     # unrecorded dirs removed
    records: list[str] = field(default_factory=list)       # records dropped or rebuilt


def clean_ingests(content: ContentStore, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    removed = []
    for entry in content.ingests.iterdir():
        m = _PARTIAL.match(entry.name)
        stale = False
        if m is None:
            stale = True
        else:
            digest = m.group(1).replace("-", ":", 1)
            try:
                age = now - entry.lstat().st_mtime
            except FileNotFoundError:
                continue
            stale = content.has(digest) or age > INGEST_MAX_AGE or not entry.is_file()
        if stale:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def tree_size(path: os.PathLike[str]) -> int:
    """Bytes of the regular files under ``path`` (symlinks and devices count 0)."""
    return tree_usage(path)[0]


def tree_usage(path: os.PathLike[str]) -> tuple[int, int]:
    """Bytes of the regular files under ``path`` (symlinks and devices count 0; a file's
    hard links each count), and the inodes of the tree, ``path`` itself included and
    each inode once (as containerd's snapshot usage counts them)."""
    total = 0
    inodes: set[tuple[int, int]] = set()
    for dirpath, dirs, files in os.walk(path):
        top = os.lstat(dirpath)
        inodes.add((top.st_dev, top.st_ino))
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            st = os.lstat(os.path.join(dirpath, name))
            inodes.add((st.st_dev, st.st_ino))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total, len(inodes)


def recover(content: ContentStore, snapshots: Snapshots, metadata: Metadata) -> Recovered:
    """Run once at start, before the service accepts calls."""
    out = Recovered(ingests=clean_ingests(content))
    used = metadata.used_chains()
    on_disk = set(snapshots.ids())
    recorded = set(metadata.snapshot_ids())
    for chain in sorted(on_disk - recorded):
        if chain in used:
            metadata.put_snapshot(chain, tree_size(snapshots.fs(chain)))
            out.records.append(chain)
        else:
            snapshots.remove(chain)
            out.snapshots.append(chain)
    for chain in sorted(recorded - on_disk):
        if chain not in used:
            metadata.delete_snapshot(chain)
            out.records.append(chain)
    if out.ingests or out.snapshots or out.records:
        get_logger().info("store recovered", ingests=len(out.ingests),
                          snapshots=len(out.snapshots), records=len(out.records))
    return out
