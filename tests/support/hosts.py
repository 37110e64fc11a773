"""Hosts for multi-host tests: network namespaces joined by a bridge of their own.

``with Lab(["a", "b", "d"]) as lab: lab["b"].ip`` gives each host a namespace with one
interface (``eth0``, an address in SUBNET) plugged into a bridge that lives in a namespace
of its own too, so nothing is added to the test machine's network namespace: no link,
route or rule there to leave behind. Processes run in a host with ``nsenter --net`` (only
the network namespace: ``ip netns exec`` would also remount /sys and hide the cgroup
mounts a shim needs). ``close()`` kills what the hosts run and deletes every namespace,
which takes their veths, bridge and addresses with them; it runs even when a test fails.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from tests.support import processes

NETNS_DIR = Path("/run/netns")
# The namespaces reach nothing else, so any private /24 does; one no host route uses.
SUBNET = "10.231.77"


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


class Host:
    def __init__(self, name: str, netns: str, ip: str, port: str) -> None:
        self.name = name
        self.netns = netns
        self.ip = ip
        self.port = port  # its veth's end on the bridge (in the switch namespace)
        self.procs: list[subprocess.Popen[Any]] = []

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR / self.netns}", *argv]

    def run(self, argv: Sequence[str], timeout: float = 120,
            env: dict[str, str] | None = None,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(argv), capture_output=True, text=True,
                              timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"on {self.name}: {' '.join(argv)} exited "
                                 f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, argv: Sequence[str], log: IO[bytes],
              env: dict[str, str] | None = None) -> subprocess.Popen[Any]:
        """A long-running process in this host, stopped by Lab.close()."""
        proc = subprocess.Popen(self.argv(argv), stdout=log, stderr=log, env=env,
                                stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def wait_port(self, port: int, timeout: float = 30) -> None:
        """Until something accepts TCP connections on this host's ``port``."""
        probe = ("import socket,sys\n"
                 f"s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('{self.ip}',"
                 f" {port})))")
        deadline = time.monotonic() + timeout
        while self.run(["python3", "-c", probe], timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {self.ip}:{port}")
            time.sleep(0.1)


class Lab:
    def __init__(self, names: Sequence[str]) -> None:
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.switch = f"mu{tag}sw"
        self.hosts = {name: Host(name, f"mu{tag}{name}", f"{SUBNET}.{i + 1}", f"p{i}")
                      for i, name in enumerate(names)}
        self.made: list[str] = []

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def start(self) -> Lab:
        _ip("netns", "add", self.switch)
        self.made.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts.values()):
            _ip("netns", "add", host.netns)
            self.made.append(host.netns)
            _ip("-n", self.switch, "link", "add", f"p{i}", "type", "veth", "peer", "name",
                "eth0", "netns", host.netns)
            _ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0", "up")
            _ip("-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
        return self

    def shape(self, name: str, rate: str) -> None:
        """Traffic to host ``name`` at most ``rate`` ("32mbit"): a slow link, so that a
        transfer lasts long enough to be cut in the middle."""
        proc = subprocess.run(["tc", "-n", self.switch, "qdisc", "add", "dev",
                               self.hosts[name].port, "root", "tbf", "rate", rate,
                               "burst", "32kb", "latency", "1s"],
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"tc: {proc.stderr.strip()}")

    def unshape(self, name: str) -> None:
        subprocess.run(["tc", "-n", self.switch, "qdisc", "del", "dev",
                        self.hosts[name].port, "root"], capture_output=True, timeout=30)

    def cut(self, a: str, b: str, cut: bool = True) -> None:
        """Cut (or restore) the path between hosts ``a`` and ``b`` only: each drops what
        it would send the other (a blackhole route), as a broken link between them would;
        their other peers still reach both."""
        for src, dst in ((a, b), (b, a)):
            _ip("-n", self.hosts[src].netns, "route", "add" if cut else "del", "blackhole",
                f"{self.hosts[dst].ip}/32")

    def stop_processes(self) -> None:
        """SIGTERM (then SIGKILL) what the hosts run through popen()."""
        for host in self.hosts.values():
            for proc in host.procs:
                processes.stop(proc)

    def close(self) -> None:
        self.stop_processes()
        errors = []
        for netns in reversed(self.made):
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", netns)
            if (NETNS_DIR / netns).exists():
                errors.append(netns)
        if errors:
            raise AssertionError(f"network namespaces left behind: {errors}")

    def __enter__(self) -> Lab:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
