"""File modes of the engine's state, as Docker keeps /var/lib/docker: nothing a local user
can list or read (issue 19: the root was 0755, the gateway's database, each container's
config.json with its environment, and its log were 0644).

The root and the run dir are 0711, not Docker's 0710: a container with a user namespace of
its own (--uidmap) has its remapped root traverse them to reach its rootfs, bundle files
and volumes, and its maps are per container, so no single group fits (Docker's
userns-remap has one remapped group for the daemon). Nothing is listable, and below them
every directory is 0700, or 0710 with the group of the one container that must traverse
it (``share_with``). Secrets and state are 0600, logs 0640.

Every service tightens what exists of its own part at start, so a store made by an older
version gets the same modes; only bits are removed, a mode an admin made stricter stays.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

TRAVERSE_DIR = 0o711
PRIVATE_DIR = 0o700
SHARED_DIR = 0o710  # with the group of one container's remapped root
PRIVATE_FILE = 0o600
LOG_FILE = 0o640


def tighten(path: Path | str, allowed: int) -> None:
    """Clear the mode bits of ``path`` that ``allowed`` does not have. A missing path or a
    symlink (its mode means nothing; never follow it) is left alone."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return
        mode = stat.S_IMODE(st.st_mode)
        if mode & ~allowed:
            os.chmod(path, mode & allowed, follow_symlinks=False)


def private_dir(path: Path, mode: int = PRIVATE_DIR) -> Path:
    """``path`` made (with its parents) or tightened to ``mode``."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    tighten(path, mode)
    return path


def private_files(directory: Path, pattern: str, mode: int = PRIVATE_FILE) -> None:
    for path in directory.glob(pattern):
        tighten(path, mode)


def open_private(path: Path | str, mode: int = PRIVATE_FILE, append: bool = False) -> int:
    """A file descriptor to write ``path``, created with ``mode`` (never wider, even when it
    exists from an older version)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    st = os.fstat(fd)
    if stat.S_IMODE(st.st_mode) & ~mode:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) & mode)
    return fd


def share_with(path: Path | str, gid: int) -> None:
    """Let the group ``gid`` (a container's remapped root) traverse, and only traverse,
    the directory ``path``: root:gid 0710."""
    os.chown(path, 0, gid, follow_symlinks=False)
    os.chmod(path, SHARED_DIR, follow_symlinks=False)


def secure_base(root: Path, run: Path) -> None:
    """The state root and the run dir: made or tightened to 0711."""
    private_dir(root, TRAVERSE_DIR)
    private_dir(run, TRAVERSE_DIR)
    private_files(run, "*.log", LOG_FILE)
