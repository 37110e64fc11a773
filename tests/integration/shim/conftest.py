"""A real ``muelle-shim`` process in temp dirs, plus overlay rootfs mounts for containers.

Every test checks that nothing is left behind: mounts under the temp dir, processes that
mention it, and cgroups under the shim's unique cgroup parent.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from muelle.shim.v1 import shim_pb2, shim_pb2_grpc
from muelle.types.v1 import types_pb2

from engine.launcher import healthy
from services.core.client import connect
from tests.support import hostcheck, network, required
from tests.support.engine import cgroups_under, mounts_under, processes_mentioning, sweep
from tests.support.images import busybox_layer

pytestmark = pytest.mark.root


# All three, always: a runtime that is missing or broken fails its tests with the reason
# (required.tool) rather than dropping out of the parametrisation.
RUNTIMES = ["runc", "crun", "muelle"]
RUNTIME_BINARIES = {"runc": "runc", "crun": "crun", "muelle": "muelle-runtime"}


@pytest.fixture(autouse=True)
def _runtime_is_there(request: pytest.FixtureRequest) -> None:
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("runtime") if callspec is not None else None
    if name in RUNTIME_BINARIES:
        required.tool(RUNTIME_BINARIES[name])


class ShimProcess:
    """muelle-shim as a subprocess; ``kill9()`` and ``start()`` for live-restore tests."""

    def __init__(self, base: Path) -> None:
        # Unix socket paths are limited to 108 bytes: keep the dir short.
        self.dir = Path(tempfile.mkdtemp(prefix="mu-shim-", dir=base))
        self.cgroup_parent = f"muelle-test-{uuid.uuid4().hex[:8]}"
        self.bridge = f"mus{uuid.uuid4().hex[:8]}"  # host-global: one per shim side by side
        hostcheck.claim(str(self.dir), self.cgroup_parent, self.bridge)
        self.config = self.dir / "muelle.toml"
        self.config.write_text(
            f'root = "{self.dir}/root"\nrun = "{self.dir}/run"\nlog_format = "json"\n'
            f'[shim]\ncgroup_parent = "{self.cgroup_parent}"\ndefault_runtime = "runc"\n'
            f'[network]\nbridge = "{self.bridge}"\n')
        self.address = f"unix://{self.dir}/run/shim.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.lower = self.dir / "lower"
        self.lower.mkdir()
        with tarfile.open(fileobj=io.BytesIO(busybox_layer().tar())) as tar:
            tar.extractall(self.lower, filter="tar")
        self.stub: shim_pb2_grpc.ShimStub = connect(
            self.address, shim_pb2_grpc.ShimStub, "shim")

    def start(self) -> None:
        log = open(self.dir / "shim.log", "ab")  # noqa: SIM115 - kept by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.shim.main", "--config", str(self.config)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 30
        while not healthy(self.address):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("shim did not start:\n" + self.logs())
            time.sleep(0.05)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        path = self.dir / "shim.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def rootfs(self) -> list[types_pb2.Mount]:
        """A fresh overlay over the busybox lower dir."""
        layer = self.dir / "layers" / uuid.uuid4().hex[:8]
        (layer / "upper").mkdir(parents=True)
        (layer / "work").mkdir()
        return [types_pb2.Mount(type="overlay", source="overlay", options=[
            f"lowerdir={self.lower}", f"upperdir={layer / 'upper'}",
            f"workdir={layer / 'work'}"])]

    def create(self, args: list[str], runtime: str = "runc", **spec: object) -> str:
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        self.stub.Create(shim_pb2.CreateRequest(
            id=cid, runtime=runtime, rootfs=self.rootfs(),
            spec=shim_pb2.ContainerSpec(args=args, **spec)))  # type: ignore[arg-type]
        return cid

    def run(self, args: list[str], runtime: str = "runc",
            **spec: object) -> tuple[str, shim_pb2.ContainerStatus]:
        cid = self.create(args, runtime, **spec)
        self.stub.Start(shim_pb2.StartRequest(id=cid))
        return cid, self.stub.Wait(shim_pb2.WaitRequest(id=cid), timeout=60)

    def output(self, cid: str, stream: str = "") -> bytes:
        req = shim_pb2.LogsRequest(id=cid, stdout=stream == "stdout",
                                      stderr=stream == "stderr")
        return b"".join(e.data for e in self.stub.Logs(req))

    def delete_all(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for c in self.stub.List(shim_pb2.ListRequest()).containers:
            self.stub.Delete(shim_pb2.DeleteRequest(id=c.id, force=True))

    def close(self) -> list[str]:
        try:
            self.delete_all()
        finally:
            self.stop()
        leftovers = []
        if mounts_under(self.dir):
            leftovers.append(f"mounts {mounts_under(self.dir)}")
        if processes_mentioning(str(self.dir)):
            leftovers.append(f"processes {processes_mentioning(str(self.dir))}")
        for d in cgroups_under(self.cgroup_parent):
            subs = [p for p in d.iterdir() if p.is_dir()]
            if subs:
                leftovers.append(f"cgroups {subs}")
        leftovers += network.sweep(self.dir / "root", self.bridge)
        leftovers += sweep(self.dir, self.cgroup_parent)
        shutil.rmtree(self.dir, ignore_errors=True)
        return leftovers


@pytest.fixture
def shim() -> Iterator[ShimProcess]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    sp = ShimProcess(Path("/tmp"))
    try:
        sp.start()
        yield sp
    finally:
        leftovers = sp.close()
    assert not leftovers, f"left behind: {leftovers}\n{sp.logs()}"
