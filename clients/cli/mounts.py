"""Docker's --mount and --tmpfs flags -> CreateContainerRequest fields (-v is sent as is)."""

from __future__ import annotations

from clients.cli.units import UsageError, parse_bytes

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TRUE = {"", "1", "true"}
_FALSE = {"0", "false"}
_IGNORED = {"consistency", "volume-driver", "bind-recursive"}
# Docker's values; every mount is rprivate here (the keys are accepted for compatibility),
# but a value Docker would refuse is refused.
_PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}


def _flag(key: str, value: str, spec: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise UsageError(f'invalid argument "{spec}" for "--mount" flag: '
                     f"invalid value for {key}: {value}")


def parse_mount(spec: str) -> Any:
    """"type=volume,source=data,target=/data,readonly" -> engine.v1 VolumeMount."""
    from clients.sdk import lite

    m = lite.types.VolumeMount(type="volume")
    for field in filter(None, (f.strip() for f in spec.split(","))):
        key, eq, value = field.partition("=")
        key = key.lower()
        if key == "type":
            if value not in ("bind", "volume", "tmpfs"):
                raise UsageError(f'invalid argument "{spec}" for "--mount" flag: '
                                 f"unsupported mount type {value!r}")
            m.type = value
        elif key in ("source", "src"):
            m.source = value
        elif key in ("target", "destination", "dst"):
            m.target = value
        elif key in ("readonly", "ro"):
            m.readonly = _flag(key, value if eq else "", spec)
        elif key == "volume-nocopy":
            m.no_copy = _flag(key, value if eq else "", spec)
        elif key == "tmpfs-size":
            m.tmpfs_size = parse_bytes(value)
        elif key == "tmpfs-mode":
            try:
                m.tmpfs_mode = int(value, 8)
            except ValueError:
                raise UsageError(f"invalid tmpfs-mode {value!r}") from None
        elif key == "bind-propagation":
            if value not in _PROPAGATIONS:
                raise UsageError(f'invalid argument "{spec}" for "--mount" flag: '
                                 f"invalid bind-propagation {value!r}: want one of "
                                 f"{', '.join(sorted(_PROPAGATIONS))}")
        elif key not in _IGNORED:
            raise UsageError(f'invalid argument "{spec}" for "--mount" flag: '
                             f"unexpected key '{key}' in '{field}'")
    if not m.target:
        raise UsageError(f'invalid argument "{spec}" for "--mount" flag: target is required')
    if m.type == "bind" and not m.source:
        raise UsageError(f'invalid argument "{spec}" for "--mount" flag: '
                         "source is required for a bind mount")
    if m.type == "tmpfs" and m.source:
        raise UsageError(f'invalid argument "{spec}" for "--mount" flag: '
                         "source is not allowed for a tmpfs mount")
    return m


def parse_tmpfs(specs: list[str]) -> dict[str, str]:
    """["/run:size=64m,mode=1777"] -> {"/run": "size=64m,mode=1777"}."""
    out = {}
    for spec in specs:
        path, _, options = spec.partition(":")
        if not path:
            raise UsageError(f"invalid --tmpfs value {spec!r}: a path is required")
        out[path] = options
    return out
