"""Load and check a bundle's config.json (runtime-spec config.md) before touching anything."""

from __future__ import annotations

import os

from services.runtime import capabilities, cjson
from services.runtime.paths import absolute, join, under
from vocab.errors import InvalidArgument, NotFound

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from typing import Any

    Spec = dict[str, Any]


def load(bundle: str) -> tuple[str, Spec]:
    """The absolute bundle path and its parsed, validated config."""
    path = absolute(bundle)
    config = join(path, "config.json")
    try:
        with open(config) as f:
            spec = cjson.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"no config.json in bundle {path}") from None
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read {config}: {exc}") from None
    validate(spec)
    return path, spec


def validate(spec: Any) -> None:
    """Reject what we cannot honour with a clear message (never a KeyError later)."""
    if not isinstance(spec, dict):
        raise InvalidArgument("config.json: not a JSON object")
    process = spec.get("process")
    if not isinstance(process, dict):
        raise InvalidArgument("config.json: process is required")
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise InvalidArgument("config.json: process.args must be a non-empty list of strings")
    if not isinstance(process.get("cwd", "/"), str) or not process.get("cwd", "/").startswith("/"):
        raise InvalidArgument("config.json: process.cwd must be an absolute path")
    root = spec.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str):
        raise InvalidArgument("config.json: root.path is required")
    caps = process.get("capabilities") or {}
    if not isinstance(caps, dict):
        raise InvalidArgument("config.json: process.capabilities must be an object")
    for kind, names in caps.items():
        if not isinstance(names, list):
            raise InvalidArgument(f"config.json: capabilities.{kind} must be a list")
        for name in names:
            capabilities.number(name)  # raises InvalidArgument on an unknown name
    for m in spec.get("mounts") or []:
        if not isinstance(m, dict) or not str(m.get("destination", "")).startswith("/"):
            raise InvalidArgument(f"config.json: mount {m!r} needs an absolute destination")
    linux = spec.get("linux") or {}
    for ns in linux.get("namespaces") or []:
        if ns.get("type") not in NAMESPACE_TYPES:
            raise InvalidArgument(f"config.json: unknown namespace type {ns.get('type')!r}")
    if spec.get("hooks") is not None:
        from services.runtime import hooks

        hooks.validate(spec["hooks"])
    propagation = linux.get("rootfsPropagation", "")
    if propagation and propagation not in ROOTFS_PROPAGATION:
        raise InvalidArgument(f"config.json: unknown linux.rootfsPropagation {propagation!r}")
    cgroups_path = linux.get("cgroupsPath", "")
    if cgroups_path and ".." in cgroups_path.split("/"):
        raise InvalidArgument(f"config.json: cgroupsPath {cgroups_path!r} must not contain ..")


ROOTFS_PROPAGATION = ("private", "rprivate", "shared", "rshared", "slave", "rslave",
                      "unbindable", "runbindable")
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def rootfs(bundle: str, spec: Spec) -> str:
    path = under(bundle, spec["root"]["path"])
    if not os.path.isdir(path):
        raise NotFound(f"rootfs {path} does not exist")
    return os.path.realpath(path)
