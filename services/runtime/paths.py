"""Resolve a container path inside the rootfs without ever leaving it (like securejoin).

Symlinks are followed component by component with the rootfs as "/": an absolute target
restarts at the rootfs, and ``..`` stops at the rootfs, so a hostile image cannot make us
create or mount over a host path.
"""

from __future__ import annotations

import os
import stat

from vocab.errors import FailedPrecondition, InvalidArgument

MAX_LINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    pending = [p for p in unsafe.split("/")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise InvalidArgument(f"{unsafe}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = target.split("/") + pending
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


# Every step of a walk: the entry itself, never what a symlink there points to.
_STEP = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def open_in_root(root: str, unsafe: str, make: str = "") -> int:
    """An O_PATH fd of ``unsafe`` resolved inside ``root``, made if missing when ``make``
    is "dir" (missing parents too) or "file" (an empty file; parents as directories).

    secure_join resolves the path without leaving the root; the walk then goes from an fd
    of the root one component at a time with O_NOFOLLOW, creating relative to the fd it
    holds (mkdirat, openat O_CREAT|O_EXCL). A component that became a symlink meanwhile
    (a container sharing a volume can swap one in: CVE-2024-45310) is refused, never
    followed, so nothing is created, opened or mounted outside the root. Mount through
    ``/proc/self/fd/N`` of the result (``fd_path``)."""
    if make not in ("", "dir", "file"):
        raise ValueError(f"make={make!r}")
    joined = secure_join(root, unsafe)
    rel = os.path.relpath(joined, root)
    parts = [] if rel == "." else rel.split("/")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            step = _step(fd, part, (make if last else "dir") if make else "", not last, unsafe)
            os.close(fd)
            fd = step
    except BaseException:
        os.close(fd)
        raise
    return fd


def _step(parent: int, name: str, make: str, must_be_dir: bool, unsafe: str) -> int:
    try:
        fd = os.open(name, _STEP, dir_fd=parent)
    except FileNotFoundError:
        if not make:
            raise
        try:
            if make == "dir":
                os.mkdir(name, 0o755, dir_fd=parent)
            else:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW |
                                 os.O_CLOEXEC, 0o644, dir_fd=parent))
        except FileExistsError:
            pass  # made meanwhile: checked below like anything that was there
        fd = os.open(name, _STEP, dir_fd=parent)
    mode = os.fstat(fd).st_mode
    if stat.S_ISLNK(mode) or (must_be_dir and not stat.S_ISDIR(mode)):
        os.close(fd)
        what = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
        raise FailedPrecondition(f"{unsafe}: {name!r} became {what} while the path was "
                                 f"resolved in the rootfs; refusing to follow it")
    return fd


def fd_path(fd: int) -> str:
    """The magic link of ``fd``: system calls given it act on what the fd pins."""
    return f"/proc/self/fd/{fd}"


def make_target(root: str, unsafe: str, is_dir: bool) -> None:
    """Create a mount target inside ``root`` (a dir, or an empty file for file binds)."""
    os.close(open_in_root(root, unsafe, "dir" if is_dir else "file"))
