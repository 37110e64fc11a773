"""Disk usage (`system df`): what images, their layers and container layers take.

Layer sizes are the recorded snapshot sizes (bytes of regular files, as `docker images`
SIZE); a layer shared by several images is counted once in the totals and reported as
shared by each image. Container sizes are measured now, on their writable layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.imagestore.content import ContentStore
from services.imagestore.metadata import Metadata
from services.imagestore.recover import tree_usage
from services.imagestore.snapshots import Snapshots


@dataclass
class ImageUsage:
    id: str
    repo_tags: list[str]
    size: int          # all of its layers
    shared_size: int   # its layers that other images use too
    containers: int    # containers standing on it


@dataclass
class ContainerUsage:
    id: str
    image_id: str
    size: int          # bytes written to its writable layer
    inodes: int = 0    # inodes in its writable layer


@dataclass
class Usage:
    images: list[ImageUsage] = field(default_factory=list)
    containers: list[ContainerUsage] = field(default_factory=list)
    layers_size: int = 0       # every snapshot, each counted once
    reclaimable_size: int = 0  # snapshots no container stands on
    blobs_size: int = 0        # compressed blobs, manifests and configs kept


def usage(content: ContentStore, snapshots: Snapshots, metadata: Metadata) -> Usage:
    sizes = metadata.snapshot_sizes()
    images = metadata.list_images()
    users: dict[str, int] = {}
    for rec in images:
        for chain in set(rec.chain_ids):
            users[chain] = users.get(chain, 0) + 1
    containers = metadata.list_containers()
    per_image: dict[str, int] = {}
    out = Usage()
    container_chains: set[str] = set()
    for cid, chains in containers:
        entry = metadata.get_container(cid)
        image_id = entry[0] if entry else ""
        per_image[image_id] = per_image.get(image_id, 0) + 1
        container_chains.update(chains)
        upper = snapshots.container_dir(cid) / "upper"
        size, inodes = tree_usage(upper) if upper.is_dir() else (0, 0)
        out.containers.append(ContainerUsage(cid, image_id, size, inodes))
    for rec in images:
        mine = set(rec.chain_ids)
        out.images.append(ImageUsage(
            rec.id, rec.repo_tags, sum(sizes.get(c, 0) for c in mine),
            sum(sizes.get(c, 0) for c in mine if users.get(c, 0) > 1),
            per_image.get(rec.id, 0)))
    out.layers_size = sum(sizes.values())
    out.reclaimable_size = sum(s for c, s in sizes.items() if c not in container_chains)
    for blob in content.ids():
        try:
            out.blobs_size += content.size(blob)
        except Exception:  # noqa: BLE001 - removed while we looked
            continue
    return out
