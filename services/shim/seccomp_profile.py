"""Docker's default seccomp policy as an OCI ``linux.seccomp`` object (SPECS.md §6.2).

An allow-list: every syscall not named here fails with EPERM. The names below were written
from the kernel's syscall tables and the policy's description, grouped by what they do; a
name this kernel or libseccomp does not know is skipped by the runtime, so 32-bit and newer
names can stay in the list. What Docker denies by default is simply absent: mount and the
new mount API, unshare/setns, pivot_root, keyctl and friends, bpf, perf_event_open,
userfaultfd, kexec, module loading, reboot, swapon, acct, syslog, setting the clock,
quotactl, NUMA policy calls, io_uring. Some of those come back with a capability (the
GATED table) when the container is given it.
"""

from __future__ import annotations

import itertools
import platform
from typing import Any

_FILES = """
    access chdir chmod chown chown32 close close_range creat dup dup2 dup3 faccessat
    faccessat2 fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchmodat2 fchown
    fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fremovexattr
    fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64
    futimesat getcwd getdents getdents64 getxattr lchown lchown32 lgetxattr link linkat
    listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 mkdir mkdirat
    mknod mknodat name_to_handle_at newfstatat open openat openat2 pread64 preadv preadv2
    pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv removexattr rename
    renameat renameat2 rmdir setxattr stat stat64 statfs statfs64 statx symlink symlinkat
    sync sync_file_range syncfs truncate truncate64 umask unlink unlinkat utime utimensat
    utimensat_time64 utimes write writev copy_file_range sendfile sendfile64 splice tee
    vmsplice cachestat
"""
_EVENTS = """
    epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
    epoll_wait_old eventfd eventfd2 inotify_add_watch inotify_init inotify_init1
    inotify_rm_watch fanotify_mark poll ppoll ppoll_time64 pselect6 pselect6_time64 select
    _newselect signalfd signalfd4 timerfd_create timerfd_gettime timerfd_gettime64
    timerfd_settime timerfd_settime64 io_cancel io_destroy io_getevents io_pgetevents
    io_pgetevents_time64 io_setup io_submit ioctl
"""
_MEMORY = """
    brk madvise mincore mlock mlock2 mlockall mmap mmap2 mprotect mremap msync munlock
    munlockall munmap memfd_create memfd_secret pkey_alloc pkey_free pkey_mprotect
    remap_file_pages map_shadow_stack membarrier
"""
_PROCESSES = """
    capget capset execve execveat exit exit_group fork vfork getcpu getegid getegid32
    geteuid geteuid32 getgid getgid32 getgroups getgroups32 getpgid getpgrp getpid getppid
    getpriority getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list
    getrusage getsid gettid getuid getuid32 get_thread_area set_thread_area kill tgkill tkill
    pidfd_open pidfd_send_signal prctl prlimit64 process_mrelease restart_syscall rseq
    sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
    sched_get_priority_min sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp setfsgid setfsgid32 setfsuid setfsuid32 setgid
    setgid32 setgroups setgroups32 setpgid setpriority setregid setregid32 setresgid
    setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid
    set_tid_address setuid setuid32 ugetrlimit uname wait4 waitid waitpid ioprio_get
    ioprio_set times sysinfo landlock_add_rule landlock_create_ruleset
    landlock_restrict_self ptrace process_vm_readv process_vm_writev
"""
_SIGNALS_AND_TIME = """
    alarm pause rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
    rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack
    sigprocmask sigreturn getitimer setitimer timer_create timer_delete timer_getoverrun
    timer_gettime timer_gettime64 timer_settime timer_settime64 clock_adjtime
    clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
    clock_nanosleep clock_nanosleep_time64 gettimeofday nanosleep time adjtimex futex
    futex_requeue futex_time64 futex_wait futex_waitv futex_wake getrandom
"""
_IPC_AND_NET = """
    accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom
    recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown
    socketcall socketpair ipc msgctl msgget msgrcv msgsnd semctl semget semop semtimedop
    semtimedop_time64 shmat shmctl shmdt shmget mq_getsetattr mq_notify mq_open
    mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink
    pipe pipe2
"""
ALLOWED = tuple(sorted(set(" ".join(
    (_FILES, _EVENTS, _MEMORY, _PROCESSES, _SIGNALS_AND_TIME, _IPC_AND_NET)).split())))

# Per machine: the extra calls of that architecture, and the seccomp arches of the filter.
ARCH_EXTRAS = {
    "x86_64": ("arch_prctl", "modify_ldt"),
    "aarch64": (),
    "armv7l": ("breakpoint", "cacheflush", "set_tls", "arm_fadvise64_64",
               "arm_sync_file_range", "sync_file_range2"),
    "ppc64le": ("sync_file_range2", "swapcontext"),
    "s390x": ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"),
    "riscv64": ("riscv_flush_icache",),
}
ARCHES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "armv7l": ["SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
    "riscv64": ["SCMP_ARCH_RISCV64"],
}

# Calls allowed only with a capability (the container's bounding set decides).
GATED = {
    "CAP_SYS_ADMIN": ("bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount",
                      "fsopen", "fspick", "lookup_dcookie", "lsm_get_self_attr",
                      "lsm_list_modules", "lsm_set_self_attr", "mount", "mount_setattr",
                      "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
                      "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2",
                      "unshare"),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
}

AF_ALG, AF_VSOCK = 38, 40
# personality(2) personas a container may switch to: PER_LINUX, PER_LINUX32, UNAME26,
# PER_LINUX32|UNAME26, and 0xffffffff, which only queries.
PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
# CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: new namespaces need
# CAP_SYS_ADMIN.
CLONE_NAMESPACES = 0x7E020000
ENOSYS = 38


def _allow(names: list[str] | tuple[str, ...],
           args: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": list(names), "action": "SCMP_ACT_ALLOW"}
    if args:
        rule["args"] = args
    return rule


def _arg(index: int, op: str, value: int, value_two: int = 0) -> dict[str, Any]:
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def default_profile(capabilities: list[str], machine: str | None = None) -> dict[str, Any]:
    """The OCI seccomp object for a container with ``capabilities`` on ``machine``."""
    machine = machine or platform.machine()
    caps = set(capabilities)
    rules = [_allow(sorted({*ALLOWED, *ARCH_EXTRAS.get(machine, ())}))]
    # socket(2): every address family but AF_ALG and AF_VSOCK.
    rules += [_allow(["socket"], [_arg(0, "SCMP_CMP_LT", AF_ALG)]),
              _allow(["socket"], [_arg(0, "SCMP_CMP_EQ", AF_ALG + 1)]),
              _allow(["socket"], [_arg(0, "SCMP_CMP_GT", AF_VSOCK)])]
    rules += [_allow(["personality"], [_arg(0, "SCMP_CMP_EQ", p)]) for p in PERSONAS]
    gated = sorted({n for cap, names in GATED.items() if cap in caps for n in names})
    if "CAP_SYS_ADMIN" not in caps:
        # clone without namespace flags (s390 swaps the first two arguments).
        flags_arg = 1 if machine == "s390x" else 0
        rules.append(_allow(["clone"], [_arg(flags_arg, "SCMP_CMP_MASKED_EQ",
                                             CLONE_NAMESPACES, 0)]))
        # clone3's flags live in memory seccomp cannot read: ENOSYS makes libc use clone.
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    if gated:
        rules.append(_allow(gated))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ARCHES.get(machine, []),
        "syscalls": rules,
    }


def from_docker(profile: dict[str, Any], capabilities: list[str], machine: str | None = None,
                kernel: str | None = None) -> dict[str, Any]:
    """A user's profile (`--security-opt seccomp=FILE`, Docker's format: archMap,
    includes/excludes by caps, arches and minKernel, "name" or "names") as an OCI object."""
    machine = machine or platform.machine()
    host_kernel = _kernel_version(kernel or platform.release())
    caps = set(capabilities)
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") in ARCHES.get(machine, [])[:1]:
            arches = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    ours = ARCHES.get(machine, [])[:1]
    rules = []
    for rule in profile.get("syscalls") or []:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if exc.get("caps") and set(exc["caps"]) & caps:
            continue
        if inc.get("arches") and not _arch_matches(inc["arches"], ours):
            continue
        if exc.get("arches") and _arch_matches(exc["arches"], ours):
            continue
        if inc.get("minKernel") and host_kernel < _kernel_version(str(inc["minKernel"])):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        out: dict[str, Any] = {"names": names, "action": rule.get("action", "")}
        for key in ("args", "errnoRet"):
            if rule.get(key) is not None:
                out[key] = rule[key]
        rules.append(out)
    result: dict[str, Any] = {"defaultAction": profile.get("defaultAction", ""),
                              "architectures": arches, "syscalls": rules}
    if profile.get("defaultErrnoRet") is not None:
        result["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return result


def _arch_matches(names: list[str], ours: list[str]) -> bool:
    # Docker names arches by Go's GOARCH ("amd64") or by seccomp's ("SCMP_ARCH_X86_64").
    go = {"SCMP_ARCH_X86_64": "amd64", "SCMP_ARCH_AARCH64": "arm64", "SCMP_ARCH_ARM": "arm",
          "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_S390X": "s390x",
          "SCMP_ARCH_RISCV64": "riscv64"}
    return any(n in ours or n in {go.get(o) for o in ours} for n in names)


def _kernel_version(release: str) -> tuple[int, int]:
    """"6.1.0-18-amd64" -> (6, 1); what Docker's minKernel compares."""
    parts = []
    for part in release.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return (parts + [0, 0])[0], (parts + [0, 0])[1]
