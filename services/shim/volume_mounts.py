"""A container's volume, bind and tmpfs mounts -> OCI mounts, with safe destinations.

Every destination is resolved inside the rootfs like runc's securejoin (a symlink is
followed with the rootfs as "/", so `/data -> /etc` lands on `<rootfs>/etc`, never on the
host's /etc), created there, and handed to the runtime as that resolved, symlink-free
path. So the destination is safe whichever runtime mounts it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from muelle.types.v1 import types_pb2

from services.core.inroot import join_in_root, make_target
from services.shim.volumes import VolumeStore
from vocab.errors import InvalidArgument, MuelleError

TMPFS_DEFAULTS = ["nosuid", "nodev", "noexec"]


@dataclass
class Resolved:
    """What create made; recorded in meta.json so delete can release it."""
    oci: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


def _check_target(target: str, seen: set[str]) -> str:
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid mount target {target!r}: must be an absolute path")
    norm = os.path.normpath(target)
    if norm == "/":
        raise InvalidArgument("invalid mount target \"/\": cannot mount over the root")
    if norm in seen:
        raise InvalidArgument(f"Duplicate mount point: {norm}")
    seen.add(norm)
    return norm


def _is_empty(path: str) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def _copy_up(src: str, data: str) -> None:
    """Fill a new volume with the image's content at its target (Docker's copy-up)."""
    if not os.path.isdir(src) or os.path.islink(src) or not _is_empty(data):
        return
    # cp -a keeps owners, modes, xattrs and symlinks as symlinks (never followed).
    result = subprocess.run(["cp", "-a", "--", f"{src}/.", f"{data}/"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise InvalidArgument(f"copying image content into the volume: {result.stderr.strip()}")


def _tmpfs_options(m: types_pb2.VolumeMount) -> list[str]:
    opts = list(TMPFS_DEFAULTS)
    for opt in m.tmpfs_options:
        if not opt or "," in opt:
            raise InvalidArgument(f"invalid tmpfs option {opt!r}")
        if opt in ("exec", "suid", "dev"):
            opts = [o for o in opts if o != "no" + opt]
        opts.append(opt)
    if m.tmpfs_size < 0:
        raise InvalidArgument("tmpfs size must not be negative")
    if m.tmpfs_size:
        opts.append(f"size={m.tmpfs_size}")
    if m.tmpfs_mode:
        if m.tmpfs_mode > 0o7777:
            raise InvalidArgument(f"invalid tmpfs mode {m.tmpfs_mode:o}")
        opts.append(f"mode={m.tmpfs_mode:o}")
    return opts


def prepare(mounts: Sequence[types_pb2.VolumeMount], rootfs: str, cid: str,
            volumes: VolumeStore) -> Resolved:
    """Resolve, create and reference everything ``mounts`` needs; undone on failure."""
    out = Resolved()
    seen: set[str] = set()
    try:
        for m in mounts:
            target = _check_target(m.target, seen)
            dest = join_in_root(rootfs, target)
            inside = "/" + os.path.relpath(dest, rootfs)
            record: dict[str, Any] = {"type": m.type, "target": target, "readonly": m.readonly}
            if m.type == "bind":
                if not m.source.startswith("/"):
                    raise InvalidArgument(
                        f"invalid bind source {m.source!r}: must be an absolute path")
                if not os.path.exists(m.source):
                    raise InvalidArgument(f'invalid mount config for type "bind": bind '
                                          f"source path does not exist: {m.source}")
                make_target(rootfs, target, os.path.isdir(m.source))
                opts = ["rbind", m.propagation or "rprivate"] + (["ro"] if m.readonly else [])
                out.oci.append({"destination": inside, "type": "bind", "source": m.source,
                                "options": opts})
                record["source"] = m.source
            elif m.type == "volume":
                vol, _ = volumes.create(m.source)
                record.update(name=vol.name, anonymous=vol.anonymous, source=vol.mountpoint)
                volumes.acquire(vol.name, cid)
                out.records.append(record)  # from here on delete must release it
                if not m.no_copy:  # like Docker: only into an empty volume
                    _copy_up(dest, vol.mountpoint)
                make_target(rootfs, target, True)
                opts = ["rbind", "rprivate"] + (["ro"] if m.readonly else [])
                out.oci.append({"destination": inside, "type": "bind",
                                "source": vol.mountpoint, "options": opts})
                continue
            elif m.type == "tmpfs":
                opts = _tmpfs_options(m) + (["ro"] if m.readonly else [])
                make_target(rootfs, target, True)
                out.oci.append({"destination": inside, "type": "tmpfs", "source": "tmpfs",
                                "options": opts})
                record["source"] = ""
            else:
                raise InvalidArgument(
                    f"invalid mount type {m.type!r}: want bind, volume or tmpfs")
            out.records.append(record)
    except BaseException:
        release(out.records, cid, volumes, remove_anonymous=True)
        raise
    # Parents before children (like Docker), so /a never hides /a/b; by the resolved
    # destination, since /link/b may really be /etc/b.
    out.oci.sort(key=lambda m: m["destination"].rstrip("/").count("/"))
    return out


def release(records: list[dict[str, Any]], cid: str, volumes: VolumeStore,
            remove_anonymous: bool) -> None:
    """Drop the container's volume references; its anonymous volumes too if asked."""
    for rec in records:
        if rec.get("type") != "volume":
            continue
        try:
            volumes.release(rec["name"], cid, remove_anonymous=remove_anonymous)
        except MuelleError as exc:
            volumes.log.warning("release failed", volume=rec.get("name"), error=str(exc))


def to_proto(records: list[dict[str, Any]]) -> list[types_pb2.VolumeMount]:
    return [types_pb2.VolumeMount(
        type=r.get("type", ""), source=r.get("source", ""), target=r.get("target", ""),
        readonly=bool(r.get("readonly")), name=r.get("name", ""),
        anonymous=bool(r.get("anonymous"))) for r in records]
