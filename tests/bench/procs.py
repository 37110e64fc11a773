"""Process accounting for the memory benchmark: RSS/PSS, and which processes belong to whom."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

CGROUP_MOUNT = Path("/sys/fs/cgroup")


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0  # gone, or a kernel thread


def rss(pid: int) -> int:
    """Resident set size in bytes (0 when the process is gone)."""
    return _status_kib(pid, "VmRSS") * 1024


def pss(pid: int) -> int:
    """Proportional set size in bytes: shared pages split between their users."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def referring_to(text: str) -> set[int]:
    """Processes whose command line or environment mentions ``text`` (e.g. an engine dir).

    The environment catches helpers forked without exec (a Python monitor keeps the
    service's MUELLE_CONFIG), the command line catches the ones started with flags.
    """
    needle = text.encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                if needle in (entry / part).read_bytes():
                    found.add(int(entry.name))
                    break
            except OSError:
                continue
    return found


def children_running(parents: set[int], text: str) -> set[int]:
    """Children of ``parents`` whose command line contains ``text``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid in parents and text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.add(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def in_cgroups(parent: str) -> set[int]:
    """Processes in any cgroup under ``parent`` in any hierarchy (the containers' own)."""
    found: set[int] = set()
    if not CGROUP_MOUNT.is_dir():
        return found
    for hierarchy in CGROUP_MOUNT.iterdir():
        top = hierarchy / parent.strip("/")
        if not top.is_dir():
            continue
        for procs in top.rglob("cgroup.procs"):
            try:
                found.update(int(p) for p in procs.read_text().split())
            except (OSError, ValueError):
                continue
    return found


def total_rss(pids: Iterable[int]) -> int:
    return sum(rss(p) for p in pids)


def total_pss(pids: Iterable[int]) -> int:
    """Proportional set size: pages shared between the processes (a library all four
    services map, like grpcio's) are counted once across them, not once per process."""
    return sum(pss(p) for p in pids)


def command(pid: int, words: int = 3) -> str:
    """The first words of a command line ("python3 -m services.shim.monitor")."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    return " ".join(a.decode(errors="replace") for a in argv[:words] if a)[:120]


def describe(pids: Iterable[int]) -> list[dict[str, object]]:
    """What each process is and uses, for the result file."""
    return [{"pid": p, "comm": comm(p), "command": command(p), "rss": rss(p), "pss": pss(p)}
            for p in sorted(pids)]


# The least a gRPC service in Python can weigh: the interpreter, grpcio and protobuf
# imported, a server listening with a thread pool, nothing of muelle's.
_FLOOR = """
import sys
from concurrent import futures
import grpc
import google.protobuf.descriptor_pb2
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_insecure_port("unix:" + sys.argv[1])
server.start()
print("up", flush=True)
sys.stdin.read()
"""


def grpc_server_floor_rss() -> int:
    """RSS of a bare Python gRPC server process (bytes), measured in a child."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-c", _FLOOR, f"{tmp}/floor.sock"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
            time.sleep(0.5)  # let the server's threads settle
            return rss(proc.pid)
        finally:
            proc.kill()
            proc.wait()
