"""linux.uidMappings / gidMappings: checked, written for the new user namespace, looked up.

The intermediate unshares CLONE_NEWUSER on its own and waits; ``create`` (still in the host's
user namespace, where writing a map needs no special dance) writes both maps into
/proc/<intermediate>/, and only then does the intermediate become root of the namespace and
unshare the others, so they belong to it (as runc's nsexec does).
"""

from __future__ import annotations

from vocab.errors import InvalidArgument

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from typing import Any

MAX_LINES = 340  # the kernel's limit on lines in a uid_map/gid_map
ID_LIMIT = 1 << 32


def parse(linux_cfg: dict[str, Any], kind: str) -> list[tuple[int, int, int]]:
    """``kind`` is "uid" or "gid": [(containerID, hostID, size)], checked like the kernel."""
    raw = linux_cfg.get(f"{kind}Mappings") or []
    if not isinstance(raw, list):
        raise InvalidArgument(f"config.json: linux.{kind}Mappings must be a list")
    if len(raw) > MAX_LINES:
        raise InvalidArgument(f"config.json: linux.{kind}Mappings has more than {MAX_LINES} "
                              "entries")
    out: list[tuple[int, int, int]] = []
    for entry in raw:
        try:
            inner, outer, size = (entry[k] for k in ("containerID", "hostID", "size"))
        except (KeyError, TypeError):
            raise InvalidArgument(f"config.json: {kind} mapping {entry!r} needs containerID, "
                                  "hostID and size") from None
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (inner, outer, size)):
            raise InvalidArgument(f"config.json: {kind} mapping {entry!r}: numbers expected")
        if size <= 0 or inner < 0 or outer < 0 or inner + size > ID_LIMIT \
                or outer + size > ID_LIMIT:
            raise InvalidArgument(f"config.json: {kind} mapping {entry!r} is out of range")
        out.append((inner, outer, size))
    for i, a in enumerate(out):
        for b in out[i + 1:]:
            if a[0] < b[0] + b[2] and b[0] < a[0] + a[2]:
                raise InvalidArgument(f"config.json: {kind} mappings overlap inside the "
                                      "container")
    return out


def check(linux_cfg: dict[str, Any], ns: dict[str, str]) -> None:
    """Mappings go with a user namespace, and a new one needs both (runc's rules)."""
    uids, gids = parse(linux_cfg, "uid"), parse(linux_cfg, "gid")
    if "user" not in ns:
        if uids or gids:
            raise InvalidArgument("config.json: uid/gid mappings need a user namespace")
        return
    if ns["user"]:
        return  # a joined one has its maps; any given here only tell us host IDs (runc too)
    if not uids or not gids:
        raise InvalidArgument("config.json: a new user namespace needs linux.uidMappings and "
                              "linux.gidMappings")


def write(pid: int, linux_cfg: dict[str, Any]) -> None:
    """Write both maps of ``pid``'s (new, still unmapped) user namespace, one write each."""
    for kind in ("uid", "gid"):
        text = "".join(f"{i} {o} {n}\n" for i, o, n in parse(linux_cfg, kind))
        with open(f"/proc/{pid}/{kind}_map", "w") as f:
            f.write(text)


def to_host(linux_cfg: dict[str, Any], kind: str, container_id: int) -> int:
    """The host ID of ``container_id`` (itself without mappings; overflow 65534 unmapped)."""
    mappings = parse(linux_cfg, kind)
    if not mappings:
        return container_id
    for inner, outer, size in mappings:
        if inner <= container_id < inner + size:
            return outer + container_id - inner
    return 65534
