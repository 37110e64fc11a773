"""A container's file tree as its processes see it, for `docker cp` both ways: its root
filesystem with its mounts over it (named volumes, bind mounts, the /etc/hosts,
/etc/hostname and /etc/resolv.conf binds and, while it runs, its tmpfs mounts), walked
from fds on the host without mounting anything (dockerd mounts them for the copy).

The mount table comes from the bundle's config.json: every bind mount by its resolved
destination (volume_mounts.py handed the runtime symlink-free destinations) and, for a
running container, every tmpfs but /dev, opened inside /proc/<init>/root (the pid checked:
the live monitor's child, in a mount namespace of its own, still alive once the root is
open). A stopped container has no tmpfs: the directory under the mount point is what a
copy sees, as with dockerd.

Paths resolve like Docker's FollowSymlinkInScope (core/scoped.py): a symlink is followed
with the container's root as "/" whichever mount it is in, ".." stops at that root; so a
link in a volume to "/", "..", or a host path lands in the container's tree, never on the
host's. Every step is an O_PATH | O_NOFOLLOW open relative to its parent's fd (or the fd
of the mount over it), so a link swapped in meanwhile is refused, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from services.core import scoped
from services.core.inroot import fd_path, open_in_root
from services.shim.monitors import Monitors
from services.shim.store import ContainerDir
from vocab.errors import InvalidArgument, NotFound

STEP = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_SKIP_TMPFS = ("/dev",)  # device nodes: dockerd's copies never see them either


@dataclass
class Mount:
    fd: int  # O_PATH fd of what is mounted there (a directory, or a file for a file bind)
    readonly: bool


@dataclass
class Found:
    parts: list[str]  # the resolved path, components from the container's root
    fd: int  # O_PATH fd of what is there (a symlink itself when not followed)
    st: os.stat_result
    through_mounts: bool  # a mount was crossed, or lies below this directory


@dataclass
class View:
    """The container's root fd and its mounts by container path ("/data")."""

    root: int
    mounts: dict[str, Mount] = field(default_factory=dict)
    readonly_root: bool = False

    def close(self) -> None:
        """Close its fds, once (a second close must not hit fds reused since)."""
        fds = {self.root, *(m.fd for m in self.mounts.values())} - {-1}
        self.root, self.mounts = -1, {}
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def key(parts: list[str]) -> str:
        return "/" + "/".join(parts)

    def step(self, parent: int, parts: list[str]) -> int:
        """An O_PATH fd of ``parts[-1]`` in ``parent`` (the fd of ``parts[:-1]``): the
        root of the mount over it if there is one, else the entry itself, unfollowed."""
        mount = self.mounts.get(self.key(parts))
        if mount is not None:
            return os.dup(mount.fd)
        return os.open(parts[-1], STEP, dir_fd=parent)

    def lookup(self, parts: list[str]) -> tuple[int, bool]:
        """(an O_PATH fd of what ``parts`` name, no link followed; whether a mount was
        crossed). FileNotFoundError / NotADirectoryError when there is nothing there."""
        fd = os.dup(self.root)
        crossed = False
        try:
            for i in range(len(parts)):
                crossed = crossed or self.key(parts[: i + 1]) in self.mounts
                nxt = self.step(fd, parts[: i + 1])
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd, crossed

    def resolve(self, path: str, follow_last: bool) -> Found:
        """What ``path`` names in the container; NotFound (Docker's words) when missing."""
        crossed = False

        def readlink(parts: list[str]) -> str | None:
            nonlocal crossed
            try:
                fd, through = self.lookup(parts)
            except (FileNotFoundError, NotADirectoryError):
                return None
            crossed = crossed or through
            try:
                if not stat.S_ISLNK(os.fstat(fd).st_mode):
                    return None
                return os.readlink("", dir_fd=fd)
            finally:
                os.close(fd)

        parts = scoped.resolve(path, readlink, follow_last)
        try:
            fd, through = self.lookup(parts)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"Could not find the file {path} in container") from None
        st = os.fstat(fd)
        below = stat.S_ISDIR(st.st_mode) and any(
            k.startswith(self.key(parts).rstrip("/") + "/") for k in self.mounts)
        return Found(parts, fd, st, crossed or through or below)

    def mount_of(self, parts: list[str]) -> Mount | None:
        """The mount ``parts`` is in (the deepest one), or None for the root filesystem."""
        for n in range(len(parts), 0, -1):
            mount = self.mounts.get(self.key(parts[:n]))
            if mount is not None:
                return mount
        return None

    def check_writable(self, parts: list[str]) -> None:
        """dockerd's refusals of a copy into a read-only place (daemon/archive.go)."""
        mount = self.mount_of(parts)
        if mount is not None and mount.readonly:
            raise InvalidArgument("mounted volume is marked read-only")
        if mount is None and self.readonly_root:
            raise InvalidArgument("container rootfs is marked read-only")


def follows_last(path: str) -> bool:
    """dockerd follows a last symlink only for a path ending in "/" or "/."."""
    return path.endswith("/") or path.endswith("/.")


def plain(rootfs: str) -> View:
    """A root filesystem alone (no mounts)."""
    return View(os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))


def open_view(cdir: ContainerDir) -> View:
    """The view of the container in ``cdir`` (its rootfs must be mounted)."""
    config = json.loads(cdir.config.read_text())
    view = plain(str(cdir.rootfs))
    try:
        view.readonly_root = bool(config.get("root", {}).get("readonly"))
        tmpfs: list[tuple[str, bool]] = []
        for m in config.get("mounts", []):
            dest = os.path.normpath(m.get("destination", "/"))
            readonly = "ro" in m.get("options", [])
            if dest == "/":
                continue
            if m.get("type") == "bind" and m.get("source", "").startswith("/"):
                try:
                    fd = os.open(m["source"], os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # gone from the host: the mount point's own content shows
                _put(view, dest, Mount(fd, readonly))
            elif m.get("type") == "tmpfs" and dest not in _SKIP_TMPFS:
                tmpfs.append((dest, readonly))
        if tmpfs:
            _add_tmpfs(view, cdir, tmpfs)
    except BaseException:
        view.close()
        raise
    return view


def _put(view: View, dest: str, mount: Mount) -> None:
    old = view.mounts.get(dest)
    if old is not None:  # the later mount at a destination is the one on top
        os.close(old.fd)
    view.mounts[dest] = mount


def _add_tmpfs(view: View, cdir: ContainerDir, tmpfs: list[tuple[str, bool]]) -> None:
    root = init_root(cdir)
    if root is None:
        return  # not running: no tmpfs to see
    try:
        for dest, readonly in tmpfs:
            try:
                fd = open_in_root(fd_path(root), dest)
            except (OSError, InvalidArgument):
                continue
            _put(view, dest, Mount(fd, readonly))
    finally:
        os.close(root)


def init_root(cdir: ContainerDir) -> int | None:
    """An O_PATH fd of the running container's root as its init sees it (its mount
    namespace), or None when it does not run. The pid is checked to be the container's
    init, not a reuse: a child of its live monitor (which reaps it), in a mount namespace
    other than ours, and still alive after its root was opened."""
    pid = cdir.read_pid(cdir.init_pid)
    monitor = cdir.read_pid(cdir.monitor_pid)
    if pid <= 0 or monitor <= 0 or cdir.status.exists() or not Monitors.alive(cdir):
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        if _ppid(pid) != monitor or _mnt_ns(str(pid)) == _mnt_ns("self"):
            return None
        try:
            root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if poller.poll(0):  # readable: it exited, the pid may name another process now
            os.close(root)
            return None
        return root
    finally:
        os.close(pidfd)


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _mnt_ns(pid: str) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return 0


def children(view: View, parts: list[str], fd: int) -> Iterator[tuple[str, int]]:
    """(name, O_PATH fd) of each entry of directory ``parts`` (open as ``fd``), sorted;
    an entry that vanished meanwhile is left out. The caller closes the fds."""
    listing = os.open(fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        names = sorted(os.listdir(listing))
        for name in names:
            try:
                child = view.step(listing, [*parts, name])
            except FileNotFoundError:
                continue
            yield name, child
    finally:
        os.close(listing)


def open_file(fd: int) -> int:
    """A read fd of the regular file pinned by O_PATH ``fd`` (reopened through its magic
    link: the same inode, no path looked up again); never blocks on a FIFO."""
    out = os.open(fd_path(fd), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        raise OSError(errno.EINVAL, "not a regular file")
    return out
