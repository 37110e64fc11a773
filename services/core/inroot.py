"""Resolve a path inside a root directory without ever leaving it: the one resolver of the
image unpack, the runtime's mounts and device nodes, and the shim's user lookup.

The root is taken as "/": ``..`` stops at it and an absolute symlink restarts at it, so a
hostile image (or a container sharing a volume, swapping symlinks in while we work) can
never make us read, create or mount anything outside the root.

Two ways to the same answer:

* ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` where the kernel has it (5.6+):
  the kernel walks the path atomically against races, relative to an fd of the root.
* Otherwise, and to create what is missing, a walk from an fd of the root, one component
  at a time, each opened ``O_PATH | O_NOFOLLOW`` relative to its parent's fd; a symlink is
  read with readlinkat and its target walked again from the root fd (absolute) or the
  parent (relative), so a component swapped for a symlink meanwhile is followed *inside*
  the root, never on the host.

Both give the same answers and the same errors (tests/unit/core/test_inroot.py runs every
case against each): FileNotFoundError for a missing component, NotADirectoryError for a
non-directory in the middle, InvalidArgument for more than 40 symlinks (the kernel's
limit). The system call goes through ctypes (Python 3.11 has no os.openat2), so the lean
runtime keeps importing the stdlib only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from vocab.errors import InvalidArgument

# typing and collections are not imported at run time: the OCI runtime's create imports
# this module in a fresh process per container (tests/unit/runtime/test_lean.py).
TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal

    Make = Literal["", "dir", "file"]

MAX_SYMLINKS = 40  # the kernel's MAXSYMLINKS, so both ways refuse the same paths

# openat2(2): the number is the same on every architecture (added after the syscall tables
# were unified in 5.1); struct open_how is three u64: flags, mode, resolve.
_SYS_OPENAT2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_RETRIES = 8  # EAGAIN: a rename raced a ".." of the walk; the kernel asks us to retry

# Every step of a walk: the entry itself, never what a symlink there points to.
_STEP = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_ROOT = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_syscall: Callable[..., int] | None = None
# None: not probed yet; tests set it to force one way (tests/unit/core/test_inroot.py).
use_openat2: bool | None = None


def _openat2(dir_fd: int, path: str, flags: int) -> int:
    global _syscall
    if _syscall is None:
        # The interpreter's own symbols include libc's (find_library would fork ldconfig).
        _syscall = ctypes.CDLL(None, use_errno=True).syscall
    how = _OpenHow(flags, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    encoded = path.encode()
    for _ in range(_RETRIES):
        fd = _syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(encoded),
                      ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def has_openat2() -> bool:
    """Whether the kernel (and any seccomp filter we run under) lets us call openat2."""
    global use_openat2
    if use_openat2 is None:
        try:
            os.close(_probe())
            use_openat2 = True
        except OSError:  # ENOSYS (old kernel), EPERM (a seccomp filter), E2BIG...
            use_openat2 = False
    return use_openat2


def _probe() -> int:
    root = os.open("/", _ROOT)
    try:
        return _openat2(root, ".", _ROOT)
    finally:
        os.close(root)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _too_many(unsafe: str) -> InvalidArgument:
    return InvalidArgument(f"{unsafe}: too many levels of symbolic links")


def _kernel(root_fd: int, unsafe: str) -> int:
    """openat2 of ``unsafe`` in the root: an O_PATH fd, or the walk's errors."""
    try:
        return _openat2(root_fd, "/".join(_parts(unsafe)) or ".", os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _too_many(unsafe) from None
        raise


class _Walk:
    """The safe walk: a stack of (O_PATH fd or None, name) below an fd of the root. A
    None fd is a component that does not exist (only kept when ``lenient``)."""

    def __init__(self, root: str, root_fd: int, on_step: Callable[[str], None] | None) -> None:
        self.root = root
        self.root_fd = root_fd
        self.stack: list[tuple[int | None, str]] = []
        self.on_step = on_step

    def top(self) -> int | None:
        return self.stack[-1][0] if self.stack else self.root_fd

    def path(self, *more: str) -> str:
        return os.path.join(self.root, *(name for _, name in self.stack), *more)

    def pop(self) -> None:
        fd, _ = self.stack.pop()
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        while self.stack:
            self.pop()

    def run(self, unsafe: str, make: Make, lenient: bool, mode: int | None) -> None:
        pending = _parts(unsafe)
        pending.reverse()  # popped from the end
        links = 0
        while pending:
            name = pending.pop()
            if name == "..":
                if self.stack:  # never above the root
                    self.pop()
                continue
            last = not pending
            parent = self.top()
            if parent is None:  # below a missing component: nothing more to look up
                self.stack.append((None, name))
                continue
            if self.on_step is not None:
                self.on_step(self.path(name))
            try:
                fd = os.open(name, _STEP, dir_fd=parent)
            except FileNotFoundError:
                if lenient:
                    self.stack.append((None, name))
                    continue
                if not make:
                    raise
                fd = _make(parent, name, "dir" if make == "dir" or not last else "file", mode)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise _too_many(unsafe)
                target = os.readlink(name, dir_fd=parent)  # what the walk stands on: in the root
                if target.startswith("/"):
                    self.close()
                pending.extend(reversed(_parts(target)))
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                if lenient:  # as a missing one: appended, ".." takes it off again
                    os.close(fd)
                    self.stack.append((None, name))
                    continue
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                         self.path(name))
            self.stack.append((fd, name))


def _make(parent: int, name: str, kind: str, mode: int | None) -> int:
    """Make ``name`` in ``parent`` (a dir, or an empty file) and open it like any step:
    what a racer made there meanwhile is taken, and checked, as if it had been there."""
    try:
        if kind == "dir":
            os.mkdir(name, 0o755 if mode is None else mode, dir_fd=parent)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW |
                             os.O_CLOEXEC, 0o644, dir_fd=parent))
    except FileExistsError:
        return os.open(name, _STEP, dir_fd=parent)
    fd = os.open(name, _STEP, dir_fd=parent)
    if mode is not None and kind == "dir" and stat.S_ISDIR(os.fstat(fd).st_mode):
        os.chmod(fd_path(fd), mode)  # exactly, whatever the umask
    return fd


def _open_root(root: str) -> int:
    return os.open(root, _ROOT)


def _walk(root: str, unsafe: str, make: Make = "", lenient: bool = False,
          mode: int | None = None,
          on_step: Callable[[str], None] | None = None) -> tuple[int | None, str]:
    """Walk ``unsafe`` in ``root``: (an O_PATH fd of the result or None if it is missing
    and ``lenient``, the path on the host)."""
    root_fd = _open_root(root)
    walk = _Walk(root, root_fd, on_step)
    try:
        walk.run(unsafe, make, lenient, mode)
        top = walk.top()
        result = os.dup(top) if top is not None else None
        return result, walk.path()
    finally:
        walk.close()
        os.close(root_fd)


def open_in_root(root: str, unsafe: str, make: Make = "", *, mode: int | None = None) -> int:
    """An O_PATH fd of ``unsafe`` resolved inside ``root``, made if missing when ``make``
    is "dir" (missing parents too) or "file" (an empty file; parents as directories).
    ``mode`` sets made directories' mode exactly (default: 0755 less the umask).

    Mount through ``/proc/self/fd/N`` of the result (``fd_path``): nothing is created,
    opened or mounted outside the root (CVE-2024-45310 class)."""
    if make not in ("", "dir", "file"):
        raise ValueError(f"make={make!r}")
    if has_openat2():
        root_fd = _open_root(root)
        try:
            return _kernel(root_fd, unsafe)
        except FileNotFoundError:
            if not make:
                raise
        finally:
            os.close(root_fd)
    fd, _ = _walk(root, unsafe, make, mode=mode)
    assert fd is not None
    return fd


def join_in_root(root: str, unsafe: str) -> str:
    """The host path ``unsafe`` names inside ``root``, symlinks followed in the root (like
    securejoin's SecureJoin): what does not exist is appended as it is, so the answer is a
    path in the root even for a target still to be made. A string only: to act on it,
    use open_in_root, which holds the result against symlinks swapped in later."""
    fd, path = _walk(root, unsafe, lenient=True)
    if fd is not None:
        os.close(fd)  # only the path is wanted (a leak of one fd per call, per mount)
    return path


def dir_in_root(root: str, unsafe: str, make: bool = False, mode: int | None = None,
                on_step: Callable[[str], None] | None = None) -> str:
    """The host path of directory ``unsafe`` in ``root``; missing ones made when ``make``
    (with ``mode`` exactly). ``on_step`` sees the host path of each component before it
    is looked up (the unpack waits there for a file still being written). Raises
    FileNotFoundError, NotADirectoryError (also for a last component that is no dir)."""
    fd: int | None = None
    if has_openat2():
        root_fd = _open_root(root)
        try:
            # The kernel's answer is final once everything exists: every component it
            # went through was a directory or a symlink, none a file still to be written.
            fd = _kernel(root_fd, unsafe)
        except (FileNotFoundError, NotADirectoryError):
            if not make and on_step is None:
                raise
        finally:
            os.close(root_fd)
    if fd is not None:
        try:
            path = os.readlink(fd_path(fd))
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        if path == root or path.startswith(root.rstrip("/") + "/"):
            if not is_dir:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            return path
        # Not under the root's path as we know it (a bind mount, a renamed root): walk.
    fd, path = _walk(root, unsafe, "dir" if make else "", mode=mode, on_step=on_step)
    assert fd is not None
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    finally:
        os.close(fd)
    return path


def read_in_root(root: str, path: str, limit: int) -> bytes | None:
    """At most ``limit`` bytes of the regular file ``path`` in ``root``, or None if it is
    missing, not a regular file (a FIFO or device is never opened for reading), or its
    path is not resolvable (a file in the middle, a symlink loop)."""
    try:
        fd = open_in_root(root, path)
    except (OSError, InvalidArgument):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with open(fd_path(fd), "rb") as f:
            return f.read(limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def make_target(root: str, unsafe: str, is_dir: bool) -> None:
    """Create a mount target inside ``root`` (a dir, or an empty file for file binds)."""
    os.close(open_in_root(root, unsafe, "dir" if is_dir else "file"))


def fd_path(fd: int) -> str:
    """The magic link of ``fd``: system calls given it act on what the fd pins."""
    return f"/proc/self/fd/{fd}"
