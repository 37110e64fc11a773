"""Raw resource counters of containers, read from their cgroups and /proc (`stats`), and
their processes (`top`). One call covers every container asked for: no per-container
sampling delay, unlike Docker's ~2 s per `stats --no-stream`; the client turns two
readings into rates."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vocab.errors import FailedPrecondition

ROOT = Path("/sys/fs/cgroup")


@dataclass
class Counters:
    read_time_ns: int = 0  # CLOCK_MONOTONIC when read
    cpu_usage_ns: int = 0
    memory_usage: int = 0  # without the inactive page cache, as Docker shows it
    memory_limit: int = 0
    pids: int = 0
    block_read: int = 0
    block_write: int = 0
    net_rx: int = 0
    net_tx: int = 0
    online_cpus: int = 0
    memory_cgroup_limit: int = 0  # the cgroup's own limit, 0 = none (CRI's availableBytes)
    memory_rss: int = 0
    memory_total: int = 0  # page cache included
    page_faults: int = 0
    major_page_faults: int = 0


def _read(path: str | Path) -> str:
    """The whole file, "" if it cannot be read. os-level: `stats` of 1000 containers reads
    ~7000 small cgroup and proc files, and pathlib's open and decoding were most of it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return ""
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _int(text: str) -> int:
    try:
        return int(text.strip().split()[0])
    except (ValueError, IndexError):
        return 0


def _keyed(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _host_memory(meminfo: Path = Path("/proc/meminfo")) -> int:
    """The host's memory in bytes: the limit `stats` shows for a container without `-m`,
    as Docker does. /proc/meminfo lines read "MemTotal:  24683772 kB" (three fields)."""
    for line in _read(meminfo).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "MemTotal:" and parts[1].isdigit():
            unit = 1024 if len(parts) > 2 and parts[2] == "kB" else 1
            return int(parts[1]) * unit
    return 0


@dataclass(frozen=True)
class Host:
    """What every container's reading shares: read once per `stats` call, not per
    container (/proc/meminfo for each of 1000 containers cost ~0.1 s)."""

    memory: int
    cpus: int
    v2: bool


def host(root: Path = ROOT) -> Host:
    return Host(memory=_host_memory(), cpus=os.cpu_count() or 1,
                v2=(root / "cgroup.controllers").exists())


def read(cgroups_path: str, pid: int, root: Path = ROOT, on: Host | None = None) -> Counters:
    """One container's counters; ``on``: the host's, from ``host()`` (read here if None)."""
    on = on or host(root)
    rel = cgroups_path.strip("/")
    c = Counters(read_time_ns=time.monotonic_ns(), online_cpus=on.cpus)
    host_mem = on.memory
    if on.v2:
        d = f"{root}/{rel}"
        c.cpu_usage_ns = _keyed(_read(f"{d}/cpu.stat")).get("usage_usec", 0) * 1000
        stat = _keyed(_read(f"{d}/memory.stat"))
        c.memory_total = _int(_read(f"{d}/memory.current"))
        c.memory_usage = max(0, c.memory_total - stat.get("inactive_file", 0))
        max_text = _read(f"{d}/memory.max").strip()
        c.memory_cgroup_limit = int(max_text) if max_text.isdigit() else 0
        c.memory_limit = c.memory_cgroup_limit or host_mem
        c.memory_rss = stat.get("anon", 0)
        c.page_faults, c.major_page_faults = stat.get("pgfault", 0), stat.get("pgmajfault", 0)
        c.pids = _int(_read(f"{d}/pids.current"))
        for line in _read(f"{d}/io.stat").splitlines():
            io = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            c.block_read += int(io.get("rbytes", 0))
            c.block_write += int(io.get("wbytes", 0))
    else:
        c.cpu_usage_ns = _int(_read(f"{root}/cpuacct/{rel}/cpuacct.usage"))
        mem = f"{root}/memory/{rel}"
        stat = _keyed(_read(f"{mem}/memory.stat"))
        usage = _int(_read(f"{mem}/memory.usage_in_bytes"))
        c.memory_total = usage
        c.memory_usage = max(0, usage - stat.get("total_inactive_file", 0))
        limit = _int(_read(f"{mem}/memory.limit_in_bytes"))
        c.memory_limit = min(limit, host_mem) if limit and host_mem else limit or host_mem
        # v1 shows "no limit" as a huge number (PAGE_COUNTER_MAX pages).
        c.memory_cgroup_limit = limit if host_mem and 0 < limit < host_mem else 0
        c.memory_rss = stat.get("total_rss", 0)
        c.page_faults = stat.get("total_pgfault", 0)
        c.major_page_faults = stat.get("total_pgmajfault", 0)
        c.pids = _int(_read(f"{root}/pids/{rel}/pids.current"))
        for line in _read(f"{root}/blkio/{rel}/blkio.throttle.io_service_bytes").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "Read":
                c.block_read += int(parts[2])
            elif len(parts) == 3 and parts[1] == "Write":
                c.block_write += int(parts[2])
    # The container's own network namespace, seen through its init.
    for line in _read(f"/proc/{pid}/net/dev").splitlines()[2:] if pid else []:
        name, _, rest = line.partition(":")
        counts = rest.split()
        if name.strip() != "lo" and len(counts) >= 9:
            c.net_rx += int(counts[0])
            c.net_tx += int(counts[8])
    return c


def read_many(targets: list[tuple[str, int]], root: Path | None = None) -> list[Counters]:
    """The counters of each (cgroups path, init pid), in order, sharing one ``host()``."""
    root = root or ROOT
    on = host(root)
    return [read(path, pid, root, on) for path, pid in targets]


def processes(cgroups_path: str, ps_args: str = "", root: Path = ROOT) -> tuple[list[str],
                                                                              list[list[str]]]:
    """`docker top`: ``ps`` columns (default ``-ef``'s) of the container's processes."""
    rel = cgroups_path.strip("/")
    pids: list[str] = []
    for candidate in (root / "pids" / rel, root / "memory" / rel, root / rel):
        text = _read(candidate / "cgroup.procs")
        if text:
            pids = text.split()
            break
    if not pids:
        return [], []
    fields = "user,pid,ppid,c,stime,tty,time,cmd"
    if ps_args:
        if any(ch in ps_args for ch in ";&|`$<>\n"):
            raise FailedPrecondition(f"invalid ps arguments {ps_args!r}")
        argv = ["ps", *ps_args.split(), "-p", ",".join(pids)]
    else:
        argv = ["ps", "-o", fields, "-p", ",".join(pids)]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FailedPrecondition(f"ps: {exc}") from None
    if out.returncode not in (0, 1):
        raise FailedPrecondition(f"ps failed: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return [], []
    titles = lines[0].split()
    rows = [line.split(None, len(titles) - 1) for line in lines[1:]]
    return titles, rows
