"""`docker cp` into a container: a tar extracted into a directory of its mounted root
filesystem, never outside it.

The destination is opened with core/inroot.open_in_root (symlinks on the way resolved
inside the root, each step O_NOFOLLOW). Every entry is then made relative to fds only:
its parent directories are walked from the destination's fd one component at a time with
O_NOFOLLOW | O_DIRECTORY (made when missing), and the entry itself is created with the
*at calls on its parent's fd, O_NOFOLLOW. A component that is a symlink (the container may
have put one there, or an earlier entry of the same tar) is refused, never followed; an
entry named with ".." or an absolute link for a hard link target is refused. So nothing is
written outside the container's root, whatever the tar or the container holds.

Given the container's view (cpview.py) rather than a bare rootfs, the destination and
every entry resolve as the container sees them: a step onto a mount point goes on in what
is mounted there (a volume, a bind mount, a running container's tmpfs), never in the
directory under it. As dockerd does, a destination in a read-only mount (or, outside any
mount, in a read-only rootfs) is refused; an entry that would go into a read-only mount or
replace a mount point is refused too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from typing import IO

from services.core.inroot import open_in_root
from services.shim.cpview import View, plain
from vocab.errors import InvalidArgument, NotFound

_DIR = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


def _parts(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"refusing tar entry {name!r}: it names a parent directory")
    return parts


def _walk(at: _At, parts: list[str], what: str) -> _At:
    """The directory ``parts`` under ``at``, made when missing; a symlink or a
    non-directory on the way is refused, and so is a read-only mount."""
    here = at.dup()
    try:
        for comp in parts:
            nxt = here.child(comp)
            mount = at.view.mounts.get(View.key(nxt.parts))
            if mount is not None:
                if mount.readonly:
                    raise InvalidArgument(f"{what}: {View.key(nxt.parts)} is a read-only "
                                          "mount")
                nxt.fd = os.dup(mount.fd)
            else:
                nxt.fd = _open_dir(here.fd, comp, what)
            here.close()
            here = nxt
    except BaseException:
        here.close()
        raise
    return here


def _open_dir(parent: int, comp: str, what: str) -> int:
    try:
        return os.open(comp, _DIR, dir_fd=parent)
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):
            os.mkdir(comp, 0o755, dir_fd=parent)
        try:
            return os.open(comp, _DIR, dir_fd=parent)
        except (NotADirectoryError, OSError) as exc:
            raise InvalidArgument(f"{what}: {comp!r} is not a directory") from exc
    except (NotADirectoryError, OSError) as exc:
        # ENOTDIR: a file or a symlink (O_NOFOLLOW): never followed
        raise InvalidArgument(f"{what}: {comp!r} is not a directory (a symbolic "
                              "link is not followed)") from exc


class _At:
    """A directory of the container being written: its fd and its path from the root."""

    def __init__(self, view: View, fd: int, parts: list[str]) -> None:
        self.view, self.fd, self.parts = view, fd, parts

    def dup(self) -> _At:
        return _At(self.view, os.dup(self.fd), self.parts)

    def child(self, name: str) -> _At:
        return _At(self.view, -1, [*self.parts, name])

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _clear(parent: int, name: str, for_dir: bool, no_overwrite: bool) -> bool:
    """Make room for a new entry ``name``; True when a directory stays (for a dir)."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if for_dir:
            return True
        raise InvalidArgument(f"cannot overwrite directory {name!r} with non-directory")
    if for_dir and no_overwrite:
        raise InvalidArgument(f"cannot overwrite non-directory {name!r} with directory")
    os.unlink(name, dir_fd=parent)
    return False


def extract(root: str | View, dest: str, data: IO[bytes], owner: tuple[int, int] | None,
            no_overwrite_dir_non_dir: bool = False) -> None:
    """Extract the tar ``data`` into directory ``dest`` of ``root`` (a rootfs, or a
    container's view with its mounts). ``owner``: (uid, gid) for every entry (Docker:
    the container's root), None keeps the tar's."""
    if isinstance(root, str):
        with plain(root) as view:
            top = _top_plain(root, dest, view)
            _extract(top, dest, data, owner, no_overwrite_dir_non_dir)
        return
    found = root.resolve(dest, follow_last=True)
    top = _At(root, found.fd, found.parts)
    try:
        root.check_writable(found.parts)
    except BaseException:
        top.close()
        raise
    _extract(top, dest, data, owner, no_overwrite_dir_non_dir)


def _top_plain(rootfs: str, dest: str, view: View) -> _At:
    try:
        return _At(view, open_in_root(rootfs, dest), [])
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {dest} in container") from None


def _extract(top: _At, dest: str, data: IO[bytes], owner: tuple[int, int] | None,
             no_overwrite_dir_non_dir: bool) -> None:
    try:
        if not stat.S_ISDIR(os.fstat(top.fd).st_mode):
            raise InvalidArgument(f"extraction point is not a directory: {dest}")
        try:
            with tarfile.open(fileobj=data, mode="r|*") as tar:
                for member in tar:
                    _entry(top, tar, member, owner, no_overwrite_dir_non_dir)
        except tarfile.TarError as exc:
            raise InvalidArgument(f"not a valid tar archive: {exc}") from None
    finally:
        top.close()


def _entry(top: _At, tar: tarfile.TarFile, m: tarfile.TarInfo,
           owner: tuple[int, int] | None, no_overwrite: bool) -> None:
    parts = _parts(m.name)
    if not parts:
        return  # the "." entry: the destination itself stays as it is
    uid, gid = owner if owner is not None else (m.uid, m.gid)
    at = _walk(top, parts[:-1], m.name)
    parent, name = at.fd, parts[-1]
    mount = top.view.mounts.get(View.key([*at.parts, name]))
    try:
        if mount is not None and (mount.readonly or not m.isdir()):
            raise InvalidArgument(f"{m.name}: cannot replace the mount point "
                                  f"{View.key([*at.parts, name])}")
        if m.isdir():
            if mount is not None:
                fd = os.dup(mount.fd)
            else:
                if not _clear(parent, name, True, no_overwrite):
                    os.mkdir(name, 0o700, dir_fd=parent)
                fd = os.open(name, _DIR, dir_fd=parent)
            try:
                os.chown(f"/proc/self/fd/{fd}", uid, gid)
                os.chmod(f"/proc/self/fd/{fd}", m.mode & 0o7777)
            finally:
                os.close(fd)
        elif m.isreg():
            _clear(parent, name, False, no_overwrite)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=parent)
            with os.fdopen(fd, "wb") as out:
                src = tar.extractfile(m)
                if src is not None:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                os.fchown(out.fileno(), uid, gid)
                os.fchmod(out.fileno(), m.mode & 0o7777)
            os.utime(name, (m.mtime, m.mtime), dir_fd=parent, follow_symlinks=False)
        elif m.issym():
            _clear(parent, name, False, no_overwrite)
            os.symlink(m.linkname, name, dir_fd=parent)
            os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        elif m.islnk():
            target = _parts(m.linkname)
            if not target:
                raise InvalidArgument(f"refusing hard link {m.name!r} to {m.linkname!r}")
            src_at = _walk(top, target[:-1], m.linkname)
            try:
                _clear(parent, name, False, no_overwrite)
                os.link(target[-1], name, src_dir_fd=src_at.fd, dst_dir_fd=parent,
                        follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                raise InvalidArgument(f"hard link {m.name!r} to {m.linkname!r}: they are "
                                      "on different mounts") from None
            finally:
                src_at.close()
        else:
            raise InvalidArgument(f"refusing tar entry {m.name!r}: devices and fifos are "
                                  "not copied into containers")
    finally:
        at.close()
