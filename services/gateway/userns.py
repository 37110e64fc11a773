"""--userns, --uidmap, --gidmap: a container's user namespace maps, checked.

Docker only knows `--userns=host` (its user namespaces are a daemon setting); the maps
take podman's syntax, "CONTAINER:HOST:SIZE", repeatable. The image's layers are not
chowned: the shim mounts them idmapped (services/shim/idmap.py).
"""

from __future__ import annotations

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.core import numbers
from vocab.errors import InvalidArgument

# The kernel refuses an extent whose first id + count wraps a u32, and (uid_t)-1 is no id:
# ids and ends of ranges stay below 2**32 - 1.
ID_LIMIT = (1 << 32) - 1
MAX_RANGES = 340  # the kernel's limit on lines of a uid_map


def parse_map(text: str, flag: str) -> types_pb2.IDMapping:
    values = [numbers.uint(p) for p in text.split(":")]
    if len(values) != 3 or None in values:
        raise InvalidArgument(f"invalid {flag} {text!r}: want CONTAINER:HOST:SIZE")
    inner, outer, size = (v or 0 for v in values)
    if size == 0 or inner + size > ID_LIMIT or outer + size > ID_LIMIT:
        raise InvalidArgument(f"invalid {flag} {text!r}: out of range")
    return types_pb2.IDMapping(container_id=inner, host_id=outer, size=size)


def _ranges(texts: list[str], flag: str) -> list[types_pb2.IDMapping]:
    if len(texts) > MAX_RANGES:
        raise InvalidArgument(f"too many {flag} ranges (at most {MAX_RANGES})")
    out = [parse_map(t, flag) for t in texts]
    for i, a in enumerate(out):
        for b in out[i + 1:]:
            if a.container_id < b.container_id + b.size and \
                    b.container_id < a.container_id + a.size:
                raise InvalidArgument(f"{flag} ranges overlap inside the container")
    return out


def default_maps(texts: list[str]) -> list[types_pb2.IDMapping]:
    """gateway.userns_remap, checked at start (a bad value stops the gateway with a clear
    error rather than failing every create)."""
    if isinstance(texts, str):
        texts = [texts]
    return _ranges(list(texts), "gateway.userns_remap")


def maps(req: engine_pb2.CreateContainerRequest,
         default: list[types_pb2.IDMapping] | None = None,
         ) -> tuple[list[types_pb2.IDMapping], list[types_pb2.IDMapping]]:
    """(uid maps, gid maps); both empty when the container shares the host's. Without
    --uidmap a container gets the engine's default (``default``) unless --userns=host."""
    if req.userns not in ("", "host"):
        raise InvalidArgument(f'invalid --userns {req.userns!r}: only "host" is supported '
                              "(give --uidmap for a user namespace of its own)")
    if req.gid_maps and not req.uid_maps:
        raise InvalidArgument("--gidmap needs --uidmap")
    if not req.uid_maps:
        if default and req.userns != "host":
            if req.privileged:
                raise InvalidArgument("privileged containers cannot run in the engine's user "
                                      "namespace remapping (use --userns=host)")
            return list(default), list(default)
        return [], []
    if req.userns == "host":
        raise InvalidArgument("--userns=host conflicts with --uidmap/--gidmap")
    if req.privileged:
        raise InvalidArgument("privileged containers cannot run in a user namespace "
                              "(use --userns=host)")
    uids = _ranges(list(req.uid_maps), "--uidmap")
    gids = _ranges(list(req.gid_maps), "--gidmap") if req.gid_maps else list(uids)
    return uids, gids
