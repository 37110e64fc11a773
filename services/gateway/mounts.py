"""A create request's -v, --mount, --tmpfs and the image's VOLUMEs -> the shim's mounts.

Parsed here, not in the CLI, so every client (SDK, plain gRPC) gets Docker's syntax for
`binds` and `tmpfs`; `mounts` arrive already structured (the CLI parses --mount).
"""

from __future__ import annotations

import os
import re

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from vocab.errors import InvalidArgument

_SIZE = re.compile(r"^(\d{1,20})([kmgt]?)b?$", re.IGNORECASE | re.ASCII)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_MAX_SIZE = (1 << 63) - 1  # tmpfs_size is an int64
_MAX_MODE = 0o7777
# The runtime mounts a fresh proc and sysfs there; a mount onto them would hide or replace
# the kernel's view (runc refuses mounts onto /proc for the same reason, checkProcMount).
_KERNEL_FS = ("/proc", "/sys")
# ... except these single files, which runc lets through for lxcfs-style overrides.
_PROC_FILES = {"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
               "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
               "/proc/net/dev", "/proc/sys/kernel/ns_last_pid"}
# -v modes we accept; SELinux labels (z, Z) and propagation do not apply here.
_IGNORED_MODES = {"z", "Z", "rprivate", "private", "rslave", "slave", "rshared", "shared"}


def parse_size(text: str) -> int:
    m = _SIZE.match(text.strip())
    if not m or int(m.group(1)) * _UNITS[m.group(2).lower()] > _MAX_SIZE:
        raise InvalidArgument(f"invalid size: {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _target(path: str, spec: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': "
                              f"mount path must be absolute")
    return path


def check_target(target: str) -> None:
    """Refuse a mount (of any type) onto the container's /proc or /sys."""
    norm = os.path.normpath(target)
    if norm.startswith("//"):  # normpath keeps a leading "//" (POSIX leaves it open)
        norm = "/" + norm.lstrip("/")
    for kernel in _KERNEL_FS:
        if norm == kernel or (kernel == "/proc" and norm.startswith("/proc/")
                              and norm not in _PROC_FILES):
            raise InvalidArgument(f"invalid mount target {target!r}: the container's "
                                  f"{kernel} is the kernel's, mounted by the runtime; "
                                  "nothing may be mounted onto it")


def parse_bind(spec: str) -> types_pb2.VolumeMount:
    """Docker -v: "/ctr", "name:/ctr[:opts]" or "/host:/ctr[:opts]", opts "ro,nocopy"."""
    parts = spec.split(":")
    if len(parts) == 1:
        return types_pb2.VolumeMount(type="volume", target=_target(parts[0], spec))
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, target = parts[0], _target(parts[1], spec)
    m = types_pb2.VolumeMount(type="bind" if source.startswith("/") else "volume",
                                source=source, target=target)
    for mode in (parts[2].split(",") if len(parts) == 3 else []):
        if mode in ("ro", "rw"):
            m.readonly = mode == "ro"
        elif mode == "nocopy" and m.type == "volume":
            m.no_copy = True
        elif mode not in _IGNORED_MODES:
            raise InvalidArgument(f"invalid mode: {mode}")
    return m


def parse_tmpfs(target: str, options: str) -> types_pb2.VolumeMount:
    """Docker --tmpfs /path[:size=64m,mode=1777,noexec,...]."""
    m = types_pb2.VolumeMount(type="tmpfs", target=_target(target, target))
    for opt in filter(None, options.split(",")):
        key, _, value = opt.partition("=")
        if key == "size":
            m.tmpfs_size = parse_size(value)
        elif key == "mode":
            mode = _octal(value)
            if mode is None:
                raise InvalidArgument(f"invalid tmpfs mode: {value!r}")
            m.tmpfs_mode = mode
        elif opt in ("ro", "rw"):
            m.readonly = opt == "ro"
        else:
            m.tmpfs_options.append(opt)
    return m


def _octal(text: str) -> int | None:
    if not 0 < len(text) <= 6 or not text.isascii() or not text.isdigit():
        return None
    try:
        mode = int(text, 8)
    except ValueError:  # an 8 or a 9
        return None
    return mode if mode <= _MAX_MODE else None


# shared/rshared need runc or crun: muelle-runtime keeps the container's root a slave of
# the host's, so the container's own mounts would not reach the host (the shim, which
# knows the runtime, refuses them for it).
PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")


def parse_volumes_from(entry: str) -> tuple[str, str]:
    """"CONTAINER[:ro|:rw]" -> (container, mode), with dockerd's refusals."""
    if not entry:
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    name, _, mode = entry.partition(":")
    parts = mode.split(",") if mode else []
    # SELinux labels (z, Z) are accepted and do not apply here, as for -v
    if not set(parts) <= {"ro", "rw", "z", "Z"} or ("ro" in parts and "rw" in parts):
        raise InvalidArgument(f"invalid mode: {mode}")
    return name, "ro" if "ro" in parts else ("rw" if parts else "")


def inherited(source: list[types_pb2.VolumeMount], mode: str
              ) -> list[types_pb2.VolumeMount]:
    """--volumes-from: the source container's volumes (by name: the same data) and bind
    mounts; read-only when it has them so or ``mode`` is "ro". Its tmpfs mounts are its
    own memory and are not shared (dockerd shares none of --tmpfs's either)."""
    out = []
    for m in source:
        readonly = m.readonly or mode == "ro"
        if m.type == "volume" and m.name:
            out.append(types_pb2.VolumeMount(type="volume", source=m.name, target=m.target,
                                             readonly=readonly, no_copy=True))
        elif m.type == "bind":
            out.append(types_pb2.VolumeMount(type="bind", source=m.source, target=m.target,
                                             readonly=readonly))
    return out


def container_mounts(req: engine_pb2.CreateContainerRequest, image: types_pb2.ImageConfig,
                     shared: list[types_pb2.VolumeMount] | None = None
                     ) -> list[types_pb2.VolumeMount]:
    """Every user mount, then ``shared`` (--volumes-from's; a later one wins a path), then
    the anonymous volumes of `-v /path` and of image VOLUMEs where nothing is mounted yet:
    dockerd's order (its Config.Volumes, where the docker CLI puts `-v /path`, come last)."""
    binds = [parse_bind(b) for b in req.binds]
    anonymous = [m for m in binds if m.type == "volume" and not m.source]
    out = [m for m in binds if m.type != "volume" or m.source]
    out += req.mounts  # the shim's VolumeMount is the engine's (types.v1)
    out += [parse_tmpfs(t, req.tmpfs[t]) for t in sorted(req.tmpfs)]
    for m in out:
        check_target(m.target)
        if m.propagation and (m.type != "bind" or m.propagation not in PROPAGATIONS):
            raise InvalidArgument(f"invalid bind-propagation {m.propagation!r} for "
                                  f"{m.target}: use one of {', '.join(PROPAGATIONS)} "
                                  "(bind mounts only)")
        if m.type == "bind" and not m.source.startswith("/"):
            raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount "
                                  f"path: '{m.source}' mount path must be absolute")
    taken = {os.path.normpath(m.target) for m in out}
    by_path = {os.path.normpath(m.target): m for m in shared or []}
    out += [m for path, m in by_path.items() if path not in taken]
    taken |= set(by_path)
    for m in anonymous:
        check_target(m.target)
        if os.path.normpath(m.target) not in taken:
            out.append(m)
            taken.add(os.path.normpath(m.target))
    for path in image.volumes:
        if path.startswith("/") and os.path.normpath(path) not in taken:
            out.append(types_pb2.VolumeMount(type="volume", target=path))
            taken.add(os.path.normpath(path))
    return out
