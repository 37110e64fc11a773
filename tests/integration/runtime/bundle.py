"""A test bundle: busybox rootfs + a config.json like Docker's defaults (SPECS.md §6)."""

from __future__ import annotations

import copy
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from tests.support.images import busybox_layer

DOCKER_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
DOCKER_CAPEFF = 0x00000000A80425FB
MASKED = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
          "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
          "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["ro", "nosuid", "noexec", "nodev"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
]
MEMORY_LIMIT = 64 * 1024 * 1024
PIDS_LIMIT = 64


def make_rootfs(rootfs: Path) -> None:
    rootfs.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(busybox_layer().tar())) as tar:
        tar.extractall(rootfs, filter="tar")


def config(args: list[str], cid: str, **process: Any) -> dict[str, Any]:
    caps = list(DOCKER_CAPS)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
            **process,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "muelle-test",
        "mounts": copy.deepcopy(MOUNTS),
        "linux": {
            "cgroupsPath": f"/muelle-test/{cid}",
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": MEMORY_LIMIT},
                "pids": {"limit": PIDS_LIMIT},
            },
            "namespaces": [{"type": t} for t in
                           ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
        },
    }


def write_bundle(bundle: Path, rootfs_src: Path, args: list[str], cid: str,
                 **process: Any) -> Path:
    """A bundle whose rootfs is a bind-free copy-by-symlink of a shared extracted rootfs."""
    bundle.mkdir(parents=True, exist_ok=True)
    cfg = config(args, cid, **process)
    cfg["root"]["path"] = str(rootfs_src)
    (bundle / "config.json").write_text(json.dumps(cfg, indent=2))
    return bundle


def edit(bundle: Path, fn: Any) -> None:
    path = bundle / "config.json"
    cfg = json.loads(path.read_text())
    fn(cfg)
    path.write_text(json.dumps(cfg, indent=2))
