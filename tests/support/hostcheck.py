"""The host before and after the test session: what the suite made must be gone, what it
did not make must still be there.

``snapshot()`` records the host's links, addresses, routes, netfilter rules (iptables and
ip6tables, every table), mounts, cgroup directories, the default device nodes' owners and
modes, and the names in /tmp the suite's processes make (``tmp_entries``) as sets of
normalised lines;
``compare()`` reports what appeared or vanished between two snapshots. Values that change
on their own (packet counters, timestamps, route expiry, carrier state) are left out of the
lines, and the few trees that the host's own service manager fills and empties all the time
are skipped (``CHURNING_CGROUPS``).

Other people may run muelle engines on the same host meanwhile (other test sessions, a
demo, the host's own Docker): ``Watch`` samples the processes during the session. When
none ran, every difference is the suite's. When some did, a difference is still blamed on
the suite when it names something the suite made (``claim()``: engine dirs, bridges,
cgroup parents) or when it is nothing such an engine makes (``maybe_theirs``): the host's
docker0, eth0's address or the default route vanishing is always reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Set in the session's environment and so inherited by every engine, dockerd and registry
# it starts: a muelle process without it is someone else's.
MARKER = "MUELLE_TEST_SESSION"

# cgroup trees that the host's own service manager creates and removes while the suite runs
# (one cgroup per unit or command), never the suite's. Keep this list short: a cgroup the
# suite leaks under any other name is reported.
CHURNING_CGROUPS = (
    "system.slice", "user.slice", "init.scope", "machine.slice",  # systemd
    "process_api",  # the init of this sandbox: one cgroup per command it runs
)

# Command lines of processes that change the host the way the suite does.
_ENGINE_PATTERNS = (
    "services.gateway.main", "services.shim.main", "services.imagestore.main",
    "services.registry.main", "services.shim.forkserver", "muelle-engine", "muelle-shim",
    "muelle-gateway", "/usr/sbin/dockerd", "bin/pytest", "-m pytest",
    "muelle-runtime", "services.runtime", "runc", "crun", "runtimetest",
)

# What muelle engines, the test harness (private dockerds, tmp dirs) and a Docker Engine
# make and remove as they run: under contention a difference naming one of these may be
# another session's. docker0 is not in it. (Any cgroup may be: every OCI runtime run
# makes one where its caller says, e.g. runtime-tools' validation programs make /testdir,
# /cgrouptest and UUIDs.)
_THEIRS = re.compile(
    r"^cgroups: "
    r"|\b(mu[st][0-9a-f]{8}|mu[0-9a-f]{12}|ve[0-9a-f]{11}|muelle|MUELLE|mdk[0-9a-f]{8}"
    r"|dockerd-test|veth[0-9a-f]+|br-[0-9a-f]{12}|DOCKER)"
    r"|/tmp/|/run/netns|/var/lib/docker|/run/docker|/run/containerd|docker/|docker-")

_claimed: set[str] = set()


def claim(*names: str) -> None:
    """Names (dirs, bridges, cgroup parents) of things this session makes: a leftover
    that mentions one is the suite's, even when other engines ran beside it."""
    _claimed.update(n for n in names if n)


def claimed() -> set[str]:
    return set(_claimed)


Snapshot = dict[str, set[str]]


def _run(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return proc.stdout if proc.returncode == 0 else ""


def _json(*argv: str) -> list[dict[str, Any]]:
    text = _run(*argv)
    try:
        data = json.loads(text) if text.strip() else []
    except ValueError:
        return []
    return data if isinstance(data, list) else []


def links() -> set[str]:
    out = set()
    for link in _json("ip", "-j", "link", "show"):
        admin = "UP" if "UP" in (link.get("flags") or []) else "DOWN"
        # the carrier (LOWER_UP, operstate) follows cables and peers: not compared
        out.add(f"{link.get('ifname')} {link.get('link_type')} master={link.get('master', '')}"
                f" {admin}")
    return out


def addresses() -> set[str]:
    out = set()
    for link in _json("ip", "-j", "addr", "show"):
        for addr in link.get("addr_info") or []:
            if addr.get("temporary"):
                continue  # IPv6 privacy addresses: the kernel rotates them on its own
            # lifetimes count down: only the address itself is compared
            out.add(f"{link.get('ifname')} {addr.get('local')}/{addr.get('prefixlen')}")
    return out


_ROUTE_KEYS = ("type", "dst", "gateway", "dev", "table", "protocol", "scope", "prefsrc",
               "metric")


def routes() -> set[str]:
    out = set()
    for family in ("-4", "-6"):
        for route in _json("ip", "-j", family, "route", "show", "table", "all"):
            # "expires" counts down and the "linkdown" flag follows the carrier: left out
            out.add(family + " " + " ".join(f"{k}={route[k]}" for k in _ROUTE_KEYS
                                             if k in route))
    return out


_COUNTERS = re.compile(r"\s*\[\d+:\d+\]$")


def netfilter() -> set[str]:
    """Rules and chains of every table, as iptables-save prints them without counters.

    Comments (with timestamps) and the packet counters of chains are dropped. A built-in
    chain is listed only when its policy is not ACCEPT: with iptables-nft a table that a
    command merely looked at springs into existence with empty ACCEPT chains, which changes
    nothing."""
    out = set()
    for tool in ("iptables-save", "ip6tables-save"):
        table = ""
        for line in _run(tool).splitlines():
            if not line or line.startswith("#") or line == "COMMIT":
                continue
            if line.startswith("*"):
                table = line[1:]
                continue
            if line.startswith(":"):
                name, policy = _COUNTERS.sub("", line[1:]).split()[:2]
                if policy not in ("-", "ACCEPT"):
                    out.add(f"{tool} {table} :{name} {policy}")
                elif policy == "-":
                    out.add(f"{tool} {table} :{name}")
                continue
            out.add(f"{tool} {table} {line}")
    return out


def mounts() -> set[str]:
    """Mount point, root within the filesystem, type and source (IDs are renumbered on
    every mount, options may be toggled by a remount: left out)."""
    out = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        out.add(f"{fields[4]} root={fields[3]} {after[0]} {after[1] if len(after) > 1 else ''}")
    return out


def cgroups(mount: Path = Path("/sys/fs/cgroup")) -> set[str]:
    out: set[str] = set()
    if not mount.is_dir():
        return out
    for top, dirs, _ in os.walk(mount):
        rel = os.path.relpath(top, mount)
        parts = rel.split(os.sep)
        # v1: <controller>/<path>; v2: <path>
        if any(part in CHURNING_CGROUPS for part in parts):
            dirs[:] = []
            continue
        if rel != ".":
            out.add(rel)
    return out


# The host's device nodes a container gets by default (bound in, with a user namespace):
# their owner and mode must stay the host's (crun 1.8 once chowned /dev/null, the stdin it
# was given, to a container's remapped root).
DEFAULT_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                   "/dev/tty")


def devices() -> set[str]:
    out = set()
    for path in DEFAULT_DEVICES:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            out.add(f"{path} {st.st_uid}:{st.st_gid} {stat.filemode(st.st_mode)}")
    return out


# Names in /tmp the suite's processes make and must remove: engine dirs (mkdtemp "mu-"),
# and the probe file Python's tempfile creates and removes in every process that asks for
# a temp dir (8 chars of its alphabet, no prefix): one a kill -9 caught in the middle was
# left once per run (now: core/memfile.py).
_TMP_NAMES = re.compile(r"^(mu-[a-z0-9_-]+|[a-z0-9_]{8})$")


def tmp_entries(tmp: Path = Path("/tmp")) -> set[str]:
    try:
        return {f"{tmp / name}" for name in os.listdir(tmp) if _TMP_NAMES.match(name)}
    except OSError:
        return set()


def snapshot() -> Snapshot:
    snap: Snapshot = {"links": links(), "addresses": addresses(), "routes": routes(),
                      "mounts": mounts(), "cgroups": cgroups(), "devices": devices(),
                      "tmp": tmp_entries()}
    if os.geteuid() == 0:
        snap["netfilter"] = netfilter()
    return snap


@dataclass
class Difference:
    kind: str
    appeared: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)


def compare(before: Snapshot, after: Snapshot) -> list[Difference]:
    out = []
    for kind in before:
        if kind not in after:
            continue
        appeared = sorted(after[kind] - before[kind])
        vanished = sorted(before[kind] - after[kind])
        if appeared or vanished:
            out.append(Difference(kind, appeared, vanished))
    return out


def ours(line: str, names: set[str]) -> bool:
    return any(name in line for name in names)


def maybe_theirs(line: str) -> bool:
    """Something another muelle engine, test session or Docker Engine could have made or
    removed meanwhile."""
    return _THEIRS.search(line) is not None


def blamed(lines: list[str], names: set[str], contended: bool) -> list[str]:
    """The differences that are the session's: all of them when it ran alone."""
    if not contended:
        return list(lines)
    return [line for line in lines if ours(line, names) or not maybe_theirs(line)]


def report(diffs: list[Difference]) -> list[str]:
    lines = []
    for diff in diffs:
        lines += [f"{diff.kind}: left behind  {item}" for item in diff.appeared]
        lines += [f"{diff.kind}: gone missing {item}" for item in diff.vanished]
    return lines


# ------------------------------------------------------------------- other engines


def _environ_has(pid: str, needle: bytes) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return True  # gone, or not ours to read: do not blame anyone on it


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def foreign_engines(marker: str) -> dict[int, str]:
    """pid -> command line of muelle engines, dockerds and test sessions on this host that
    this session did not start (their environment lacks the session's marker)."""
    mine = _ancestors(os.getpid())  # the shell or make that started this session
    found: dict[int, str] = {}
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
        except OSError:
            continue
        if any(p in cmdline for p in _ENGINE_PATTERNS) and not _environ_has(entry.name, needle):
            found[int(entry.name)] = cmdline[:200]
    return found


class Watch:
    """Samples the host's processes on a thread for engines that are not the session's."""

    def __init__(self, interval: float = 2.0) -> None:
        self.marker = uuid.uuid4().hex
        os.environ[MARKER] = self.marker
        self.interval = interval
        self.seen: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hostcheck-watch",
                                        daemon=True)

    def start(self) -> Watch:
        self._sample()
        self._thread.start()
        return self

    def _sample(self) -> None:
        with contextlib.suppress(OSError):
            self.seen.update(foreign_engines(self.marker))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> dict[int, str]:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()
        return dict(self.seen)
