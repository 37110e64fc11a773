"""`system check`: verify the store against itself, report problems, change nothing.

What is checked:
- every committed blob hashes to its name (a flipped byte on disk is found);
- every image record's blobs and layer snapshots are present;
- every snapshot record has its directory, every snapshot directory its record;
- every container record has its writable layer and its snapshots.

Blobs and snapshots that no image uses are not problems: a pull interrupted before it
recorded its image leaves them, and the next pull reuses them (`image prune` frees them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from services.imagestore.content import ContentStore
from services.imagestore.metadata import Metadata
from services.imagestore.snapshots import Snapshots
from vocab import digest as digestmod

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Problem:
    kind: str      # "blob", "image", "snapshot" or "container"
    subject: str   # the digest, image ID, chain ID or container ID concerned
    message: str   # what is wrong, for people


@dataclass
class CheckReport:
    problems: list[Problem]
    blobs: int = 0      # blobs verified
    snapshots: int = 0  # snapshot directories seen
    images: int = 0     # image records checked
    containers: int = 0
    container_ids: list[str] = field(default_factory=list)  # whose rootfs is kept


def _blob_digest(path: os.PathLike[str], name: str) -> str:
    hasher = digestmod.hasher(name)
    algorithm = name.split(":", 1)[0]
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


def check(content: ContentStore, snapshots: Snapshots, metadata: Metadata) -> CheckReport:
    report = CheckReport(problems=[])
    add = report.problems.append

    blobs = set()
    for name in sorted(content.ids()):
        report.blobs += 1
        blobs.add(name)
        try:
            path = content.path(name)
        except Exception:  # noqa: BLE001 - a stray file under blobs/ is a finding too
            add(Problem("blob", name, "file under blobs/ is not named by a digest"))
            continue
        actual = _blob_digest(path, name)
        if actual != name:
            add(Problem("blob", name, f"content has digest {actual}"))

    on_disk = set(snapshots.ids())
    report.snapshots = len(on_disk)
    recorded = set(metadata.snapshot_ids())
    for chain in sorted(recorded - on_disk):
        add(Problem("snapshot", chain, "recorded but its directory is missing"))
    for chain in sorted(on_disk - recorded):
        add(Problem("snapshot", chain, "directory has no record"))
    for chain in sorted(on_disk & recorded):
        if not snapshots.fs(chain).is_dir():
            add(Problem("snapshot", chain, "directory has no fs/ tree"))

    for rec in metadata.list_images():
        report.images += 1
        for blob in rec.blobs:
            if blob not in blobs:
                add(Problem("image", rec.id, f"blob {blob} is missing"))
        for chain in rec.chain_ids:
            if chain not in on_disk:
                add(Problem("image", rec.id, f"layer snapshot {chain} is missing"))

    recorded_containers = set()
    for cid, chains in metadata.list_containers():
        report.containers += 1
        report.container_ids.append(cid)
        recorded_containers.add(cid)
        if not (snapshots.container_dir(cid) / "upper").is_dir():
            add(Problem("container", cid, "writable layer is missing"))
        for chain in chains:
            if chain not in on_disk:
                add(Problem("container", cid, f"layer snapshot {chain} is missing"))
    # A writable layer made by a prepare that died before its record was written.
    for entry in sorted(snapshots.containers.iterdir()):
        if entry.name.startswith(".") or entry.name in recorded_containers:
            continue
        report.container_ids.append(entry.name)
        add(Problem("container", entry.name, "writable layer has no record"))
    return report
