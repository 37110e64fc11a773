"""The container's filesystem view: mounts, pivot_root, masked and read-only paths.

Runs inside the container's mount namespace (the init, before exec). Host paths are
only used before pivot_root; every target inside the rootfs is opened and made relative to
an fd of the rootfs (core/inroot.py) and mounted through that fd.
"""

from __future__ import annotations

import errno
import os

from services.core.inroot import fd_path, open_in_root
from services.runtime import linux
from services.runtime.cgroups import is_v2
from services.runtime.scoped import closing_fd
from vocab.errors import FailedPrecondition

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from services.core.inroot import Make
    from services.runtime.cgroups import Cgroup

    Warn = Callable[[str], None]

# option -> (set flags, clear flags)
FLAGS: dict[str, tuple[int, int]] = {
    "ro": (linux.MS_RDONLY, 0), "rw": (0, linux.MS_RDONLY),
    "nosuid": (linux.MS_NOSUID, 0), "suid": (0, linux.MS_NOSUID),
    "nodev": (linux.MS_NODEV, 0), "dev": (0, linux.MS_NODEV),
    "noexec": (linux.MS_NOEXEC, 0), "exec": (0, linux.MS_NOEXEC),
    "sync": (linux.MS_SYNCHRONOUS, 0), "async": (0, linux.MS_SYNCHRONOUS),
    "dirsync": (linux.MS_DIRSYNC, 0), "remount": (linux.MS_REMOUNT, 0),
    "mand": (linux.MS_MANDLOCK, 0), "nomand": (0, linux.MS_MANDLOCK),
    "atime": (0, linux.MS_NOATIME), "noatime": (linux.MS_NOATIME, 0),
    "diratime": (0, linux.MS_NODIRATIME), "nodiratime": (linux.MS_NODIRATIME, 0),
    "relatime": (linux.MS_RELATIME, 0), "norelatime": (0, linux.MS_RELATIME),
    "strictatime": (linux.MS_STRICTATIME, 0), "nostrictatime": (0, linux.MS_STRICTATIME),
    "bind": (linux.MS_BIND, 0), "rbind": (linux.MS_BIND | linux.MS_REC, 0),
    "nosymfollow": (linux.MS_NOSYMFOLLOW, 0), "symfollow": (0, linux.MS_NOSYMFOLLOW),
}
PROPAGATION = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}
# Per-mount flags a bind remount must keep (and may change).
_KEEP = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_NOATIME | \
    linux.MS_NODIRATIME | linux.MS_RELATIME | linux.MS_STRICTATIME | linux.MS_RDONLY
# Flags a user namespace's copy of a mount cannot clear (statvfs reports them in the same bits).
_LOCKED = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_NOATIME | \
    linux.MS_NODIRATIME | linux.MS_RDONLY


def parse_options(options: list[str]) -> tuple[int, list[int], str]:
    """(mount flags, propagation flags, fs-specific data) of an OCI mount's options."""
    flags, props, data = 0, [], []
    for opt in options:
        if opt in FLAGS:
            set_, clear = FLAGS[opt]
            flags = (flags | set_) & ~clear
        elif opt in PROPAGATION:
            props.append(PROPAGATION[opt])
        else:
            data.append(opt)
    return flags, props, ",".join(data)


def _remount_ro(path: str, extra: int = 0) -> None:
    current = os.statvfs(path).f_flag & _KEEP
    linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | current | extra |
                linux.MS_RDONLY)


def _in_root(rootfs: str, dest: str, make: Make = "") -> closing_fd:
    """An O_PATH fd of ``dest`` inside the rootfs (core/inroot.py), for mounting through
    its /proc/self/fd link: a symlink swapped in by a process sharing a volume can neither
    redirect the mount nor make us create anything outside (as runc's procfd). Opened
    again after a mount, it pins the new mount's root (for remounts and propagation).
    Closed when the ``with`` block ends."""
    return closing_fd(open_in_root(rootfs, dest, make))


def mount_one(rootfs: str, m: dict[str, Any], cgroup: Cgroup | None, warn: Warn) -> None:
    kind = m.get("type") or ""
    source = m.get("source") or kind
    flags, props, data = parse_options(list(m.get("options") or []))
    dest = m["destination"]
    if kind == "bind" or flags & linux.MS_BIND:
        if not os.path.exists(source):
            raise FailedPrecondition(f"mount source {source} does not exist")
        with _in_root(rootfs, dest, "dir" if os.path.isdir(source) else "file") as fd:
            linux.mount(source, fd_path(fd), None, linux.MS_BIND | (flags & linux.MS_REC),
                        label=dest)
        if flags & ~(linux.MS_BIND | linux.MS_REC):
            with _in_root(rootfs, dest) as fd:
                _remount_bind(fd_path(fd), flags & ~(linux.MS_BIND | linux.MS_REC), dest)
    elif kind in ("cgroup", "cgroup2"):
        _mount_cgroup(rootfs, dest, flags, cgroup, warn)
    else:
        with _in_root(rootfs, dest, "dir") as fd:
            try:
                linux.mount(source, fd_path(fd), kind, flags, data or None, label=dest)
            except PermissionError:
                if kind != "sysfs":
                    raise
                # A user namespace in the host's network namespace may not mount a sysfs
                # (the kernel ties it to the network namespace's owner): bind the host's,
                # with the mounts under it (it refuses to uncover what they hide).
                linux.mount("/sys", fd_path(fd), None, linux.MS_BIND | linux.MS_REC,
                            label=dest)
                with _in_root(rootfs, dest) as top:
                    _remount_bind(fd_path(top), flags & ~linux.MS_REC, dest)
    if props:
        with _in_root(rootfs, dest) as fd:
            for prop in props:
                linux.mount(None, fd_path(fd), None, prop, label=dest)


def _remount_bind(target: str, flags: int, label: str) -> None:
    """Set a bind mount's flags; keep the ones a user namespace may not clear."""
    try:
        linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | flags, label=label)
    except PermissionError:
        # Flags the mount had when a less privileged mount namespace copied it are locked
        # (nosuid, nodev, noexec, atime): asking without them is EPERM, so ask with them.
        locked = os.statvfs(target).f_flag & _LOCKED
        linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | flags | locked,
                    label=label)


def _mount_cgroup(rootfs: str, dest: str, flags: int, cgroup: Cgroup | None,
                  warn: Warn) -> None:
    """/sys/fs/cgroup: cgroup2 on v2; on v1 a tmpfs with the container's dirs bound ro."""
    with _in_root(rootfs, dest, "dir") as fd:
        if is_v2():
            linux.mount("cgroup", fd_path(fd), "cgroup2", flags, label=dest)
            return
        if cgroup is None:
            warn("no cgroup for the cgroup mount; skipped")
            return
        linux.mount("tmpfs", fd_path(fd), "tmpfs", (flags & ~linux.MS_RDONLY) |
                    linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, "mode=755", label=dest)
    ro = flags & linux.MS_RDONLY
    with _in_root(rootfs, dest) as tmpfs:  # the tmpfs just mounted: ours alone
        for name, host in cgroup.mounts():
            os.mkdir(name, 0o755, dir_fd=tmpfs)
            sub = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC,
                          dir_fd=tmpfs)
            try:
                linux.mount(host, fd_path(sub), None, linux.MS_BIND,
                            label=f"{dest}/{name}")
            finally:
                os.close(sub)
            if ro:
                top = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=tmpfs)
                try:
                    _remount_ro(fd_path(top), linux.MS_NOSUID | linux.MS_NODEV |
                                linux.MS_NOEXEC)
                finally:
                    os.close(top)
        if ro:
            _remount_ro(fd_path(tmpfs))


def prepare(rootfs: str, propagation: str) -> None:
    """Stop mounts leaking to the host, and make the rootfs a mount point for pivot_root."""
    flags = PROPAGATION.get(propagation, linux.MS_PRIVATE | linux.MS_REC)
    if flags & (linux.MS_SHARED | linux.MS_UNBINDABLE):
        # A shared "/" would send our mounts to the host and pivot_root refuses it; an
        # unbindable one refuses the bind of the rootfs onto itself below (EINVAL). The
        # container's root gets either after pivot_root (propagate).
        flags = linux.MS_SLAVE | linux.MS_REC
    linux.mount(None, "/", None, flags)
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)


def prepare_unshared(rootfs: str) -> None:
    """No mount namespace (hostmounts.py): never touch the host's "/"; bind the rootfs onto
    itself and make that bind rprivate, so the container's mounts stay under it."""
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)
    linux.mount(None, rootfs, None, linux.MS_PRIVATE | linux.MS_REC)


def chroot(rootfs: str) -> None:
    """Instead of pivot_root, which in the host's mount namespace would move the host's
    root for everyone: runc chroot()s too when there is no mount namespace."""
    os.chdir(rootfs)
    os.chroot(".")
    os.chdir("/")


def propagate(path: str, propagation: str) -> None:
    if propagation not in PROPAGATION:
        raise FailedPrecondition(f"unknown rootfsPropagation {propagation!r}")
    linux.mount(None, path, None, PROPAGATION[propagation])


def pivot(rootfs: str) -> None:
    """pivot_root(".", "."): the old root ends up stacked on "/" and is detached."""
    fd = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.chdir(rootfs)
        linux.pivot_root(".", ".")
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
        linux.umount2(".", linux.MNT_DETACH)
    finally:
        os.close(fd)
    os.chdir("/")


def mask(paths: list[str]) -> None:
    """After pivot_root: /dev/null over files, a read-only empty tmpfs over dirs."""
    for path in paths:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
            else:
                linux.mount("/dev/null", path, None, linux.MS_BIND)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise


def readonly(paths: list[str]) -> None:
    """After pivot_root: a recursive bind of each path onto itself, remounted read-only."""
    for path in paths:
        try:
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise
        _remount_ro(path)


def root_readonly() -> None:
    _remount_ro("/")
