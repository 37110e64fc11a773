"""The Linux syscalls the runtime needs, behind one small ctypes seam.

Everything that touches the kernel beyond ``os`` goes through here, so the rest of the
runtime reads as plain Python and the calls can be faked in unit tests.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

# The interpreter's own symbols include libc's; ctypes.util.find_library("c") would run
# `ldconfig -p` in a child process on every runtime call.
_libc = ctypes.CDLL(None, use_errno=True)

# clone/unshare flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 0x2

# prctl
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None, label: str | None = None) -> None:
    """mount(2); ``label`` names the target in errors when ``target`` is a /proc/self/fd
    link (the container path means something to a person, the fd number does not)."""
    ret = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(ret, f"mount {source or fstype} on {label or target}", label or target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}", target)


def pivot_root(new_root: str, put_old: str) -> None:
    nr_pivot_root = 155  # x86_64
    ret = _libc.syscall(ctypes.c_long(nr_pivot_root), _b(new_root), _b(put_old))
    _check(ret, "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def setgroups(gids: list[int]) -> None:
    # The raw syscall: glibc's wrapper would broadcast to all threads, which is fine too,
    # but we are single-threaded and want no surprises.
    os.setgroups(gids)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def capbset_drop(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def capbset_has(cap: int) -> bool:
    try:
        return prctl(PR_CAPBSET_READ, cap) == 1
    except OSError:
        return False


def ambient_raise(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


def mknod(path: str, mode: int, major: int, minor: int, dir_fd: int | None = None) -> None:
    os.mknod(path, mode, os.makedev(major, minor), dir_fd=dir_fd)


_AF_INET, _SOCK_DGRAM, _SOCK_CLOEXEC = 2, 2, 0o2000000


def link_up(name: str = "lo") -> None:
    """Bring an interface up in the current network namespace (SIOCSIFFLAGS)."""
    # socket(2) through libc: the socket module (its enums) costs every create ~2 ms to
    # import, and the init cannot import it here, after pivot_root.
    fd = _check(_libc.socket(_AF_INET, _SOCK_DGRAM | _SOCK_CLOEXEC, 0), "socket")
    try:
        req = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(fd, _SIOCGIFFLAGS, req))[1]
        req = struct.pack("16sH14x", name.encode(), flags | _IFF_UP)
        fcntl.ioctl(fd, _SIOCSIFFLAGS, req)
    finally:
        os.close(fd)


def set_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def is_eperm(exc: OSError) -> bool:
    return exc.errno in (errno.EPERM, errno.EACCES)
