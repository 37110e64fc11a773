"""A private podman (Debian's) in a temp dir, for compat tests of muelle-runtime.

    with Podman(runtime="/path/muelle-runtime") as p:
        p.podman("pull", "--tls-verify=false", "127.0.0.1:5000/demo/busybox:1")
        p.podman("run", "--rm", "127.0.0.1:5000/demo/busybox:1", "true")

It never touches the host's podman state: its own storage (vfs: no overlay mounts left
behind), run root, tmp dir, events log, network config dir and config files (the env vars
CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF), cgroupfs under a
cgroup parent of its own, and every container gets --network none (no bridge, no
netfilter rule). close() removes the containers, then sweeps and removes the dir, and
reports leftovers like Engine.close().
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.support.engine import cgroups_under, sweep

PODMAN = "/usr/bin/podman"


class Podman:
    def __init__(self, runtime: str, base: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pm-", dir=base or "/tmp"))
        self.runtime = runtime
        self.cgroup_parent = f"podman-test-{uuid.uuid4().hex[:8]}"
        for sub in ("root", "run", "tmp", "net"):
            (self.dir / sub).mkdir()
        (self.dir / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.dir / "root"}"\n'
            f'runroot = "{self.dir / "run"}"\n')
        (self.dir / "containers.conf").write_text(
            '[containers]\nnetns = "none"\n'
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{self.dir / "events.log"}"\n'
            f'tmp_dir = "{self.dir / "tmp"}"\n'
            f'[network]\nnetwork_config_dir = "{self.dir / "net"}"\n')
        (self.dir / "registries.conf").write_text("unqualified-search-registries = []\n")
        (self.dir / "policy.json").write_text(
            '{"default": [{"type": "insecureAcceptAnything"}]}\n')

    def env(self) -> dict[str, str]:
        env = dict(os.environ,
                   CONTAINERS_CONF=str(self.dir / "containers.conf"),
                   CONTAINERS_STORAGE_CONF=str(self.dir / "storage.conf"),
                   CONTAINERS_REGISTRIES_CONF=str(self.dir / "registries.conf"))
        env.pop("CONTAINER_HOST", None)
        return env

    def argv(self, *args: str) -> list[str]:
        """``podman <args>`` with this instance's storage and runtime; `run` and `create`
        get the cgroup parent that close() sweeps."""
        global_args = [PODMAN, "--root", str(self.dir / "root"), "--runroot",
                       str(self.dir / "run"), "--tmpdir", str(self.dir / "tmp"),
                       "--runtime", self.runtime, "--cgroup-manager", "cgroupfs",
                       "--events-backend", "file"]
        verb, rest = (args[0], list(args[1:])) if args else ("", [])
        if verb in ("run", "create"):
            rest = ["--cgroup-parent", f"/{self.cgroup_parent}", "--network", "none", *rest]
        elif verb == "pull":
            rest = ["--signature-policy", str(self.dir / "policy.json"), *rest]
        return [*global_args, verb, *rest] if verb else global_args

    def podman(self, *args: str, check: bool = True, timeout: float = 120,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), env=self.env(), input=input,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def close(self) -> None:
        leftovers: list[str] = []
        try:
            with contextlib.suppress(Exception):
                self.podman("rm", "-af", "-t", "0", check=False, timeout=120)
        finally:
            # conmon's cgroups: podman (cgroupfs) never removes them; empty once the
            # containers are gone, and in our cgroup parent.
            for d in cgroups_under(self.cgroup_parent):
                with contextlib.suppress(OSError):
                    (d / "conmon").rmdir()
            leftovers += sweep(self.dir, self.cgroup_parent)
            shutil.rmtree(self.dir, ignore_errors=True)
        if leftovers:
            raise AssertionError("podman left things behind: " + "; ".join(leftovers))

    def __enter__(self) -> Podman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
