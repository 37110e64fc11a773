"""A private Docker Engine (Debian's docker.io) in a temp dir, for benchmarks and compat tests.

    with Dockerd() as d:
        d.docker("pull", "127.0.0.1:5000/demo/busybox:1")
        d.docker("run", "--rm", "127.0.0.1:5000/demo/busybox:1", "true")

It never touches the host's Docker: its own --data-root, --exec-root, unix socket, pid file,
cgroup parent and an empty daemon.json. It leaves the host's netfilter and sysctls alone
(--iptables=false, --ip-forward=false). Its default ``bridge`` network always uses a Linux
bridge of its own (made here on a free 10.210.x.0/24, removed by close()), so ``docker run``
wires a veth into a network namespace as it does by default, the work a muelle container's
default network does too. Never ``--bridge=none``: dockerd started that way deletes the
host's ``docker0`` ("removeDefaultBridgeInterface"), and with it the network of the host's
own Docker containers. dockerd starts its own containerd, whose state also lives in the
temp dir. close() stops it, kills what it left, unmounts and removes the dir, and reports
leftovers like Engine.close().
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support import hostcheck
from tests.support.engine import processes_mentioning, sweep

DOCKERD = "/usr/sbin/dockerd"
# The client from the same package as the daemon; any docker CLI on PATH works too.
DOCKER_CLIENTS = ("/usr/bin/docker", "docker")


class DockerUnavailable(RuntimeError):
    """dockerd is not installed or cannot start on this machine."""


def ensure_installed(apt: bool = True) -> None:
    """Install Debian's docker.io when dockerd is missing (root only), else raise."""
    if Path(DOCKERD).exists():
        return
    if not apt or os.geteuid() != 0:
        raise DockerUnavailable(f"{DOCKERD} is missing (apt-get install docker.io)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    if proc.returncode != 0 or not Path(DOCKERD).exists():
        raise DockerUnavailable(f"apt-get install docker.io failed: {proc.stderr[-2000:]}")


def _client() -> str:
    for candidate in DOCKER_CLIENTS:
        found = shutil.which(candidate)
        if found:
            return found
    raise DockerUnavailable("no docker CLI found")


def started(**kwargs: Any) -> Dockerd:
    """A started private dockerd, or the calling test fails with the reason.

    ``make setup`` installs docker.io, so a dockerd that is missing or does not come up is a
    broken part of this machine, not one it cannot have: the test must not pass as skipped.
    (Tests needing root are skipped as a whole elsewhere, saying so.)"""
    try:
        return Dockerd(**kwargs).start()
    except DockerUnavailable as exc:
        pytest.fail(f"dockerd is required (make setup installs docker.io) and could not "
                    f"start: {exc}", pytrace=False)


class Dockerd:
    def __init__(self, base: Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.client = _client()  # first: a missing client must not leave the temp dir behind
        # Unix socket paths are limited to 108 bytes, containerd's nest deep: keep it short.
        self.dir = Path(tempfile.mkdtemp(prefix="dk-", dir=base or "/tmp"))
        self.data_root = self.dir / "data"
        self.exec_root = self.dir / "exec"
        self.socket = self.dir / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.cgroup_parent = f"dockerd-test-{uuid.uuid4().hex[:8]}"
        self.extra_args = extra_args
        # IFNAMSIZ: at most 15 characters.
        self.bridge = f"mdk{uuid.uuid4().hex[:8]}"
        hostcheck.claim(str(self.dir), self.cgroup_parent, self.bridge)
        self.bridge_made = False
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "dockerd.log"

    def start(self, wait: float = 60.0) -> Dockerd:
        """Start dockerd and wait for its API; on any failure, undo what was made."""
        try:
            return self._start(wait)
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise

    def _start(self, wait: float) -> Dockerd:
        ensure_installed()
        config = self.dir / "daemon.json"
        config.write_text("{}\n")  # never read the host's /etc/docker/daemon.json
        _make_bridge(self.bridge)
        self.bridge_made = True
        args = [
            DOCKERD,
            f"--config-file={config}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.dir / 'docker.pid'}",
            f"--host={self.host}",
            f"--cgroup-parent=/{self.cgroup_parent}",
            "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--ip-forward=false",
            f"--bridge={self.bridge}",
            "--userland-proxy=false",
            "--log-level=warn",
            *self.extra_args,
        ]
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + wait
        while True:
            if self.proc.poll() is not None:
                raise DockerUnavailable(f"dockerd exited {self.proc.returncode}:\n{self.log()}")
            if self.socket.exists() and self.docker("version", check=False,
                                                    timeout=10).returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise DockerUnavailable(f"dockerd not ready within {wait:.0f}s:\n{self.log()}")
            time.sleep(0.1)

    def docker(self, *args: str, check: bool = True, timeout: float = 300,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this daemon."""
        proc = subprocess.run(self.argv(*args), env=self.env(), input=input,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def argv(self, *args: str) -> list[str]:
        """The command line of ``docker <args>`` for callers that spawn it themselves."""
        return [self.client, "-H", self.host, *args]

    def env(self) -> dict[str, str]:
        """Environment for the CLI: a private client config, no DOCKER_HOST from outside."""
        env = dict(os.environ, DOCKER_CONFIG=str(self.dir / "client"))
        env.pop("DOCKER_HOST", None)
        env.pop("DOCKER_CONTEXT", None)
        return env

    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def containerd_pids(self) -> list[int]:
        """The containerd that this dockerd started (its child)."""
        return [p for p in _children(self.pid()) if _comm(p) == "containerd"]

    def shim_pids(self) -> list[int]:
        """containerd-shim processes serving this daemon's containers."""
        return [p for p in processes_mentioning(str(self.exec_root))
                if _comm(p).startswith("containerd-shim")]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def remove_all_containers(self) -> None:
        if self.pid() is None:
            return
        ids = self.docker("ps", "-aq", check=False, timeout=60).stdout.split()
        if ids:
            self.docker("rm", "-f", *ids, check=False, timeout=120)

    def close(self) -> None:
        leftovers: list[str] = []
        try:
            with contextlib.suppress(Exception):
                self.remove_all_containers()
        finally:
            if self.proc and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    leftovers.append("dockerd ignored SIGTERM")
                    self.proc.kill()
                    self.proc.wait()
            try:
                leftovers += sweep(self.dir, self.cgroup_parent)
                _unmount_under(self.dir)
                shutil.rmtree(self.dir, ignore_errors=True)
            finally:
                if self.bridge_made:
                    gone = subprocess.run(["ip", "link", "del", self.bridge],
                                          capture_output=True, text=True)
                    if gone.returncode != 0 and Path(f"/sys/class/net/{self.bridge}").exists():
                        leftovers.append(f"bridge {self.bridge}: {gone.stderr.strip()}")
        if leftovers:
            raise AssertionError("dockerd left things behind: " + "; ".join(leftovers))

    def __enter__(self) -> Dockerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_bridge(name: str) -> None:
    """A bridge with the first address of a /24 that no host route uses (dockerd -b reads
    it). A host-wide lock keeps two test daemons starting at once off the same /24."""
    from services.shim.network.subnets import host_routes

    with open("/run/lock/muelle-test-dockerd-bridge.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _make_bridge_locked(name, host_routes())


def _make_bridge_locked(name: str, busy: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
                        ) -> None:
    for net in ipaddress.ip_network("10.210.0.0/16").subnets(new_prefix=24):
        if not any(net.overlaps(other) for other in busy):
            break
    else:
        raise DockerUnavailable("no free /24 in 10.210.0.0/16 for dockerd's bridge")
    gateway = next(net.hosts())
    for argv in (["ip", "link", "add", name, "type", "bridge"],
                 ["ip", "addr", "add", f"{gateway}/{net.prefixlen}", "dev", name],
                 ["ip", "link", "set", name, "up"]):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["ip", "link", "del", name], capture_output=True)
            raise DockerUnavailable(f"{' '.join(argv)}: {done.stderr.strip()}")


def _unmount_under(path: Path) -> None:
    # dockerd may leave mounts that sweep() already reported; a second pass takes nested ones.
    prefix = str(path)
    for _ in range(3):
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if line.split()[4].startswith(prefix)]
        if not mounts:
            return
        for mountpoint in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _children(pid: int | None) -> list[int]:
    if pid is None:
        return []
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found
