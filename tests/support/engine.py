"""A whole muelle engine (the four services as real processes) in temp dirs.

Used by every integration and e2e test through tests/conftest.py. Each engine has its own
root, run dir and cgroup parent, so several run side by side; close() removes every
container, stops the services and then checks that nothing it made is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from engine import launcher
from services.core import config as configmod
from tests.support import hostcheck, network

VENV_BIN = Path(sys.executable).parent
CLI = str(VENV_BIN / "muelle")
CGROUP_MOUNT = Path("/sys/fs/cgroup")


class Engine:
    def __init__(self, base: Path | None = None, default_runtime: str = "muelle",
                 extra_config: str = "",
                 services: tuple[str, ...] = launcher.ORDER, combined: bool = False,
                 bridge: str | None = None, cgroup_parent: str | None = None,
                 default_names: bool = False, root_size: str = "") -> None:
        """``extra_config``: TOML appended to the config file (e.g. ``[addresses]`` or
        ``[registry]`` lines); ``services``: the ones this engine starts and stops (leave
        out "registry" to use a shared registry service named in ``[addresses]``);
        ``combined``: they run in one process (muelle-engine); ``bridge`` and
        ``cgroup_parent``: names to configure (random ones by default), or with
        ``default_names`` none, so the engine derives its own from its root.
        ``services=launcher.ALL`` adds the Docker API (``docker_host``). ``root_size``: the
        root dir is a tmpfs of this size (``"48m"``), so a test can fill it (unmounted by
        close(), after the services stop)."""
        # Unix socket paths are limited to 108 bytes: keep the run dir short.
        self.dir = Path(tempfile.mkdtemp(prefix="mu-", dir=base or "/tmp"))
        # Searchable by the remapped root of a --uidmap container, as /var/lib/muelle is
        # (mkdtemp makes 0700); nothing below is listable by others.
        self.dir.chmod(0o711)
        self.root = self.dir / "root"
        self.run = self.dir / "run"
        self.cgroup_parent = cgroup_parent or f"muelle-test-{uuid.uuid4().hex[:8]}"
        # The default network's bridge is host-global: one per engine side by side.
        self.bridge = bridge or f"mut{uuid.uuid4().hex[:8]}"
        self.config_file = self.dir / "muelle.toml"
        self.config_file.write_text(
            f'root = "{self.root}"\nrun = "{self.run}"\nlog_format = "json"\n'
            + f'[shim]\ndefault_runtime = "{default_runtime}"\n'
            + ("" if default_names else f'cgroup_parent = "{self.cgroup_parent}"\n')
            + ("" if default_names else f'[network]\nbridge = "{self.bridge}"\n')
            + extra_config
        )
        self.services = services
        self.combined = combined
        self.root_size = root_size
        # Explicit overrides: MUELLE_ROOT / MUELLE_RUN in the caller's environment must not
        # send a test engine to the host's real engine directories.
        self.cfg = configmod.load(str(self.config_file), root=str(self.root), run=str(self.run))
        if default_names:  # the engine's own choice
            self.bridge, self.cgroup_parent = self.cfg.network.bridge, self.cfg.shim.cgroup_parent
        hostcheck.claim(str(self.dir), self.cgroup_parent, self.bridge)
        self.host = self.cfg.address("gateway")
        # DOCKER_HOST of its Docker API, when "dockerapi" is among the services.
        self.docker_host = f"unix://{self.cfg.docker_socket()}"
        self.env = dict(os.environ, MUELLE_HOST=self.host, MUELLE_CONFIG=str(self.config_file),
                        MUELLE_ROOT=str(self.root), MUELLE_RUN=str(self.run))

    def start(self) -> Engine:
        if self.root_size and not os.path.ismount(self.root):
            self.root.mkdir(exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.root_size},mode=0711",
                            f"muelle-test-{self.bridge}", str(self.root)], check=True)
        launcher.start(self.cfg, str(self.config_file), self.services,
                       combined=self.combined)
        return self

    def cli(self, *args: str, check: bool = True, input: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the muelle CLI against this engine."""
        proc = subprocess.run([CLI, *args], env=self.env, capture_output=True, text=True,
                              input=input.decode() if input else None, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"muelle {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def logs(self) -> str:
        """The services' logs, for failure messages."""
        out = []
        for name in (*launcher.ALL, "engine"):
            path = self.run / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)

    def remove_all_containers(self) -> None:
        # A gateway on TCP serves mutual TLS: its own certificate passes the health check.
        if not launcher.healthy(self.host, tls=self.cfg.tls_files("gateway")):
            return
        ids = self.cli("ps", "-aq", check=False).stdout.split()
        if ids:
            # ~0.1 s per container when the host is busy: 1000 (bench_scale) need more
            # than the usual two minutes.
            self.cli("rm", "-f", *ids, check=False, timeout=max(120, 0.2 * len(ids)))

    def close(self) -> None:
        try:
            self.remove_all_containers()
        finally:
            launcher.stop(self.cfg, self.services)
            leftovers = network.sweep(self.root, self.bridge)
            if self.root_size and os.path.ismount(self.root):
                # Whatever is still mounted below it is a leftover the sweep reports.
                leftovers += [f"mounts {m}" for m in mounts_under(self.root)
                              if m != str(self.root)]
                for m in sorted(mounts_under(self.root), key=len, reverse=True):
                    subprocess.run(["umount", "-l", m], capture_output=True)
            leftovers += sweep(self.dir, self.cgroup_parent)
            shutil.rmtree(self.dir, ignore_errors=True)
        if leftovers:
            raise AssertionError("engine left things behind: " + "; ".join(leftovers))

    def __enter__(self) -> Engine:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4]
        if mountpoint.startswith(prefix):
            found.append(mountpoint)
    return found


def cgroups_under(parent: str) -> list[Path]:
    found = []
    for hierarchy in CGROUP_MOUNT.iterdir():
        d = hierarchy / parent
        if d.is_dir():
            found.append(d)
    return found


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line or environment mentions ``text``: monitors forked by
    the shim's fork server carry the fork server's command line but the engine's
    environment (MUELLE_ROOT, MUELLE_RUN)."""
    needle = text.encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                if needle in (entry / part).read_bytes():
                    pids.append(int(entry.name))
                    break
            except OSError:
                continue
    return pids


def sweep(workdir: Path, cgroup_parent: str) -> list[str]:
    """Remove what an engine may have left (processes, mounts, cgroups); report it."""
    leftovers: list[str] = []
    procs = processes_mentioning(str(workdir))
    if procs:
        leftovers.append(f"processes {procs}")
        for pid in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for d in cgroups_under(cgroup_parent):
        children = [p for p in d.rglob("cgroup.procs") if p.read_text().split()]
        if children:
            leftovers.append(f"cgroup processes in {d}")
        for procs_file in children:
            for task in procs_file.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(task), signal.SIGKILL)
    if procs:
        time.sleep(0.1)
    mounts = mounts_under(workdir)
    if mounts:
        leftovers.append(f"mounts {mounts}")
        for mountpoint in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
    for d in cgroups_under(cgroup_parent):
        subs = sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        if subs:
            leftovers.append(f"cgroups {[str(p) for p in subs]}")
        for sub in [*subs, d]:
            with contextlib.suppress(OSError):
                sub.rmdir()
    return leftovers
