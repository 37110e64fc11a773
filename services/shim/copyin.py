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
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from typing import IO

from services.core.inroot import open_in_root
from vocab.errors import InvalidArgument, NotFound

_DIR = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


def _parts(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"refusing tar entry {name!r}: it names a parent directory")
    return parts


def _walk(top: int, parts: list[str], what: str) -> int:
    """An fd of the directory ``parts`` under ``top``, made when missing; a symlink or a
    non-directory on the way is refused."""
    fd = os.dup(top)
    try:
        for comp in parts:
            try:
                nxt = os.open(comp, _DIR, dir_fd=fd)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(comp, 0o755, dir_fd=fd)
                try:
                    nxt = os.open(comp, _DIR, dir_fd=fd)
                except (NotADirectoryError, OSError) as exc:
                    raise InvalidArgument(f"{what}: {comp!r} is not a directory") from exc
            except (NotADirectoryError, OSError) as exc:
                # ENOTDIR: a file or a symlink (O_NOFOLLOW): never followed
                raise InvalidArgument(f"{what}: {comp!r} is not a directory (a symbolic "
                                      "link is not followed)") from exc
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


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


def extract(rootfs: str, dest: str, data: IO[bytes], owner: tuple[int, int] | None,
            no_overwrite_dir_non_dir: bool = False) -> None:
    """Extract the tar ``data`` into directory ``dest`` of ``rootfs``. ``owner``: (uid,
    gid) for every entry (Docker: the container's root), None keeps the tar's."""
    try:
        top = open_in_root(rootfs, dest)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {dest} in container") from None
    try:
        if not stat.S_ISDIR(os.fstat(top).st_mode):
            raise InvalidArgument(f"extraction point is not a directory: {dest}")
        try:
            with tarfile.open(fileobj=data, mode="r|*") as tar:
                for member in tar:
                    _entry(top, tar, member, owner, no_overwrite_dir_non_dir)
        except tarfile.TarError as exc:
            raise InvalidArgument(f"not a valid tar archive: {exc}") from None
    finally:
        os.close(top)


def _entry(top: int, tar: tarfile.TarFile, m: tarfile.TarInfo,
           owner: tuple[int, int] | None, no_overwrite: bool) -> None:
    parts = _parts(m.name)
    if not parts:
        return  # the "." entry: the destination itself stays as it is
    uid, gid = owner if owner is not None else (m.uid, m.gid)
    parent = _walk(top, parts[:-1], m.name)
    name = parts[-1]
    try:
        if m.isdir():
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
            src_parent = _walk(top, target[:-1], m.linkname)
            try:
                _clear(parent, name, False, no_overwrite)
                os.link(target[-1], name, src_dir_fd=src_parent, dst_dir_fd=parent,
                        follow_symlinks=False)
            finally:
                os.close(src_parent)
        else:
            raise InvalidArgument(f"refusing tar entry {m.name!r}: devices and fifos are "
                                  "not copied into containers")
    finally:
        os.close(parent)
