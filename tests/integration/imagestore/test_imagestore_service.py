"""The imagestore as a real process: pull a two-layer image from the real
docker-registry through the registry service, then mount the overlay PrepareRootfs
returns and check the merged tree (whiteout, opaque dir, hardlink copy-up).

The registry service is the real ``services.registry`` process: if it does not become
healthy the tests fail with its log (no stand-in registry hides a broken service).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from muelle.images.v1 import images_pb2, images_pb2_grpc

from engine.launcher import healthy
from services.core.client import connect
from tests.support.images import push_layout
from tests.support.registry import LocalRegistry
from tests.unit.imagestore.fakes import build_two_layer
from vocab import errors

pytestmark = pytest.mark.root


def _wait_healthy(address: str, proc: subprocess.Popen[bytes] | None, secs: float) -> bool:
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if healthy(address, timeout=0.5):
            return True
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Env:
    images: images_pb2_grpc.ImagesStub
    ref: str
    dir: Path
    root: Path


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    base = Path(tempfile.mkdtemp(prefix="mu-is-", dir="/tmp"))  # short: socket paths
    procs: list[subprocess.Popen[bytes]] = []
    reg = LocalRegistry(base / "dist")
    try:
        reg.start()
        layout = base / "layout"
        build_two_layer(layout, tag="1")
        ref = f"{reg.host}/demo/two:1"
        push_layout(layout, ref, tag="1")
        run, root = base / "run", base / "root"
        run.mkdir()
        env = dict(os.environ, MUELLE_ROOT=str(root), MUELLE_RUN=str(run))
        env.pop("MUELLE_CONFIG", None)
        reg_addr = f"unix://{run}/registry.sock"
        log = open(base / "registry.log", "wb")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen([sys.executable, "-m", "services.registry.main",
                                 "--address", reg_addr], env=env, stdout=log, stderr=log)
        log.close()
        procs.append(proc)
        assert _wait_healthy(reg_addr, proc, 20), (
            "the registry service did not become healthy:\n"
            + (base / "registry.log").read_text(errors="replace"))
        env["MUELLE_REGISTRY_ADDR"] = reg_addr
        addr = f"unix://{run}/imagestore.sock"
        log = open(base / "imagestore.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen([sys.executable, "-m", "services.imagestore.main"],
                                      env=env, stdout=log, stderr=log))
        log.close()
        assert _wait_healthy(addr, procs[-1], 20), (base / "imagestore.log").read_text()
        yield Env(connect(addr, images_pb2_grpc.ImagesStub, "imagestore"), ref, base, root)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        reg.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mountpoint(env: Env) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mnt-", dir=env.dir))
    yield path
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], check=False)
    path.rmdir()


def test_pull_streams_progress_and_records_image(env: Env) -> None:
    stream = env.images.Pull(images_pb2.PullRequest(reference=env.ref))
    events = list(stream)
    assert "Pulling from demo/two" in events[0].status
    phases = [e.layer.phase for e in events if e.WhichOneof("event") == "layer"]
    assert phases.count("Pull complete") == 2
    result = events[-1].result
    assert result.image_id.startswith("sha256:") and result.digest.startswith("sha256:")
    image = env.images.Get(images_pb2.GetImageRequest(reference=env.ref))
    assert image.id == result.image_id and len(image.diff_ids) == 2
    assert list(image.config.entrypoint.values) == ["/bin/sh", "-c"]
    assert image.repo_tags == [env.ref]
    short = image.id.removeprefix("sha256:")[:12]
    assert env.images.Get(images_pb2.GetImageRequest(reference=short)).id == image.id
    listed = env.images.List(images_pb2.ListImagesRequest()).images
    assert [i.id for i in listed] == [image.id]
    again = list(env.images.Pull(images_pb2.PullRequest(reference=env.ref)))
    assert again[-1].result.up_to_date


def test_errors_are_typed(env: Env) -> None:
    with pytest.raises(errors.InvalidArgument):
        list(env.images.Pull(images_pb2.PullRequest(reference="UPPER/case")))
    with pytest.raises(errors.NotFound):
        env.images.Get(images_pb2.GetImageRequest(reference="nosuch:image"))
    with pytest.raises(errors.InvalidArgument):
        env.images.PrepareRootfs(images_pb2.PrepareRootfsRequest(
            container_id="../x", image=env.ref))
    with pytest.raises(errors.NotFound):
        list(env.images.Pull(images_pb2.PullRequest(reference=env.ref + "-missing")))


def test_rootfs_overlay_mounts_merged_tree(env: Env, mountpoint: Path) -> None:
    list(env.images.Pull(images_pb2.PullRequest(reference=env.ref)))
    reply = env.images.PrepareRootfs(images_pb2.PrepareRootfsRequest(
        container_id="itest1", image=env.ref))
    try:
        (mount,) = reply.mounts
        assert mount.type == "overlay" and mount.target == ""
        subprocess.run(["mount", "-t", mount.type, "-o", ",".join(mount.options),
                        mount.source, str(mountpoint)], check=True, capture_output=True)
        try:
            assert os.access(mountpoint / "bin/busybox", os.X_OK)
            assert not os.path.lexists(mountpoint / "etc/group")  # whiteout
            assert (mountpoint / "etc/passwd").exists()
            assert sorted(os.listdir(mountpoint / "home")) == ["app"]  # opaque: old gone
            assert (mountpoint / "home/app/keep").read_text() == "kept\n"
            assert (mountpoint / "bin/bb-link").stat().st_size == \
                (mountpoint / "bin/busybox").stat().st_size
            out = subprocess.run(["chroot", str(mountpoint), "/bin/cat", "/etc/motd"],
                                 check=True, capture_output=True, text=True).stdout
            assert out == "hello from layer 2\n"
            (mountpoint / "written").write_text("upper")
            with pytest.raises(errors.FailedPrecondition):
                env.images.RemoveRootfs(images_pb2.RemoveRootfsRequest(container_id="itest1"))
        finally:
            subprocess.run(["umount", str(mountpoint)], check=True)
        upper = Path(mount.options[1].split("=", 1)[1])
        assert (upper / "written").read_text() == "upper"
        with pytest.raises(errors.FailedPrecondition, match="itest1"[:12]):
            env.images.Remove(images_pb2.RemoveImageRequest(reference=reply.image_id))
    finally:
        env.images.RemoveRootfs(images_pb2.RemoveRootfsRequest(container_id="itest1"))
    assert not (env.root / "imagestore/containers/itest1").exists()


def test_remove_deletes_everything(env: Env) -> None:
    list(env.images.Pull(images_pb2.PullRequest(reference=env.ref)))
    removed = env.images.Remove(images_pb2.RemoveImageRequest(reference=env.ref))
    assert env.ref in removed.untagged and len(removed.deleted) == 3
    assert env.images.List(images_pb2.ListImagesRequest()).images == []
    store = env.root / "imagestore"
    assert [p for p in (store / "snapshots").iterdir()] == []
    assert [p for p in (store / "blobs/sha256").iterdir()] == []
