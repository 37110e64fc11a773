"""Fixtures for black-box runtime tests (crun style): real kernel, real runtime binaries."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.runtime.bundle import make_rootfs, write_bundle
from tests.support import required

CGROUP = Path("/sys/fs/cgroup")
PARENT = "muelle-test"
MUELLE = str(Path(sys.executable).parent / "muelle-runtime")

pytestmark = pytest.mark.root


def _cgroup_dirs(rel: str) -> list[Path]:
    """The existing cgroup dirs ``rel`` names: one on cgroup v2, one a hierarchy on v1."""
    v2 = (CGROUP / "cgroup.controllers").exists()
    roots = [CGROUP] if v2 else list(CGROUP.iterdir())
    return [p / rel for p in roots if (p / rel).exists()]


@dataclass
class Runtime:
    """One runtime binary with a private --root, remembering the ids it was given."""

    name: str
    binary: str
    root: Path
    work: Path
    ids: list[str] = field(default_factory=list)

    def cmd(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, "--root", str(self.root), *args],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def bundle(self, cid: str, args: list[str], rootfs: Path, **process: object) -> Path:
        self.ids.append(cid)
        return write_bundle(self.work / cid, rootfs, args, cid, **process)

    def create(self, cid: str, bundle: Path) -> tuple[int, str, Path]:
        """create with stdio on files: the container inherits them (a pipe would never EOF)."""
        out = self.work / f"{cid}.out"
        err = self.work / f"{cid}.err"
        pid_file = self.work / f"{cid}.pid"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.run([self.binary, "--root", str(self.root), "create", "--bundle",
                                   str(bundle), "--pid-file", str(pid_file), cid],
                                  stdout=o, stderr=e, stdin=subprocess.DEVNULL, timeout=60)
        return proc.returncode, err.read_text(), pid_file

    def run(self, cid: str, bundle: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, "--root", str(self.root), "run", "--bundle",
                               str(bundle), cid], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    def status(self, cid: str) -> str:
        import json

        proc = self.cmd("state", cid)
        return json.loads(proc.stdout)["status"] if proc.returncode == 0 else "absent"

    def wait_status(self, cid: str, want: str) -> str:
        got = ""
        for _ in range(500):
            got = self.status(cid)
            if got == want:
                break
            time.sleep(0.02)
        return got


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runtime-rootfs") / "rootfs"
    make_rootfs(path)
    return path


@pytest.fixture(params=["muelle-runtime", "runc"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    yield from _runtime_fixture(request.param, tmp_path)


@pytest.fixture
def muelle(tmp_path: Path) -> Iterator[Runtime]:
    yield from _runtime_fixture("muelle-runtime", tmp_path)


def _runtime_fixture(name: str, tmp_path: Path) -> Iterator[Runtime]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    binary = required.tool(name)  # missing or broken: the test fails, saying which
    rt = Runtime(name, binary, tmp_path / "state", tmp_path)
    try:
        yield rt
    finally:
        leftovers = _cleanup(rt)
    assert not leftovers, f"{name} left behind: {leftovers}"


def _cleanup(rt: Runtime) -> list[str]:
    """Force-delete every container, then report (and remove) anything left behind."""
    left: list[str] = []
    for cid in rt.ids:
        if rt.status(cid) != "absent":
            left.append(f"container {cid} still known")
            rt.cmd("delete", "--force", cid)
        for path in _cgroup_dirs(f"{PARENT}/{cid}"):
            left.append(f"cgroup {path}")
            with contextlib.suppress(OSError):
                os.rmdir(path)
        if (rt.root / cid).exists():
            left.append(f"state dir {rt.root / cid}")
    with open("/proc/self/mountinfo") as f:
        left += [f"mount {line.split()[4]}" for line in f if str(rt.work) in line]
    for path in _cgroup_dirs(PARENT):
        with contextlib.suppress(OSError):
            os.rmdir(path)
    return left
