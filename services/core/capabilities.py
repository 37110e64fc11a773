"""Linux capability names, shared by the shim (which writes them) and the runtime (which
applies them)."""

from __future__ import annotations

# Every capability the kernel knows, in bit order (linux/capability.h, up to
# CAP_CHECKPOINT_RESTORE = 40): ALL[n] is bit n.
ALL = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

# Docker's 14 default capabilities (moby daemon/pkg/oci/caps/defaults.go), in its order.
DOCKER_DEFAULT = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def available(status: str = "/proc/self/status") -> list[str]:
    """The capabilities this process can hand on (its bounding set), in bit order.

    "All capabilities" (--privileged, --cap-add ALL) means these, as in Docker: a host
    whose own bounding set lacks one (a VM or a container without CAP_SYS_RESOURCE) cannot
    give it, and asking for it makes every runtime's capset fail with EPERM."""
    try:
        with open(status) as f:
            line = next((x for x in f if x.startswith("CapBnd:")), "")
    except OSError:
        return list(ALL)
    if not line:
        return list(ALL)
    bits = int(line.split()[1], 16)
    return [name for i, name in enumerate(ALL) if bits & (1 << i)]
