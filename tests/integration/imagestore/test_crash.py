"""Crash safety: kill -9 the imagestore process in the middle of a pull (while a layer
downloads, and while a layer unpacks), start it again on the same root: the next pull
succeeds (resuming the partial download) and `Check` finds nothing wrong.

The registry side is a small in-test gRPC registry service over an OCI layout that can
hold a blob's stream after N bytes: a slow registry, without wall-clock sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from muelle.images.v1 import images_pb2, images_pb2_grpc
from muelle.registry.v1 import registry_pb2, registry_pb2_grpc

from engine.launcher import healthy
from services.core.client import connect
from services.core.server import ErrorInterceptor
from tests.support.images import Entry, Layer, build_layout, busybox_layer
from tests.unit.imagestore.fakes import LayoutRegistry
from vocab import errors

pytestmark = pytest.mark.root

REF = "127.0.0.1:5000/demo/crash:1"
# Bytes of the big layer served before the stream is held: past the unpack's first 1 MiB
# decoded read, so a streamed unpack gets going (and stands still) before the hold.
HOLD_AT = 2 << 20


class SlowRegistry(registry_pb2_grpc.RegistryServicer):
    """Serves the layout; the stream of ``held`` stops after HOLD_AT bytes until released."""

    def __init__(self, layout: Path) -> None:
        self.fake = LayoutRegistry(layout, REF.rsplit(":", 1)[0])
        self.held = ""
        self.holding = threading.Event()   # set when a stream reached the hold point
        self.release = threading.Event()
        self.offsets: list[tuple[str, int]] = []

    def ParseReference(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        raise errors.Unimplemented("not needed by the image store")

    def Resolve(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        r = self.fake.resolve(request.reference, None)
        content = registry_pb2.ManifestContent(content=r.root.data)
        content.descriptor.media_type = r.root.media_type
        content.descriptor.digest = r.root.digest
        content.descriptor.size = r.root.size
        return registry_pb2.ResolveResponse(canonical=r.canonical, repository=r.repository,
                                            root=content, manifest=content)

    def FetchBlob(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        digest = request.descriptor.digest
        self.offsets.append((digest, request.offset))
        sent = request.offset
        for data in self.fake.fetch_blob(request.repository, request.descriptor,
                                         request.offset):
            if digest == self.held and sent + len(data) > HOLD_AT and sent <= HOLD_AT:
                cut = HOLD_AT - sent
                yield registry_pb2.BlobChunk(data=data[:cut])
                sent += cut
                data = data[cut:]
                self.holding.set()
                self.release.wait(60)
                if not context.is_active():
                    return
            sent += len(data)
            yield registry_pb2.BlobChunk(data=data)


def _big_layer() -> Layer:
    # Incompressible, so the blob is big; many small files, so the unpack takes a while.
    files = [Entry(f"data/f{i:05d}", data=os.urandom(64)) for i in range(3000)]
    return Layer([Entry("data", "dir"), Entry("data/big", data=os.urandom(3 << 20)), *files])


class Service:
    def __init__(self, base: Path, registry_addr: str) -> None:
        self.base = base
        self.root = base / "root"
        self.env = dict(os.environ, MUELLE_ROOT=str(self.root), MUELLE_RUN=str(base / "run"),
                        MUELLE_REGISTRY_ADDR=registry_addr)
        self.env.pop("MUELLE_CONFIG", None)
        self.addr = f"unix://{base}/run/imagestore.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> images_pb2_grpc.ImagesStub:
        with open(self.base / "imagestore.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "services.imagestore.main"],
                                         env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not healthy(self.addr, timeout=0.5):
            assert self.proc.poll() is None, (self.base / "imagestore.log").read_text()
            assert time.monotonic() < deadline, "imagestore did not become healthy"
            time.sleep(0.05)
        return connect(self.addr, images_pb2_grpc.ImagesStub, "imagestore")  # type: ignore[no-any-return]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "layout"
    build_layout(path, [busybox_layer(), _big_layer()], tag="1")
    return path


@pytest.fixture
def env(layout: Path) -> Iterator[tuple[Service, SlowRegistry]]:
    base = Path(tempfile.mkdtemp(prefix="mu-crash-", dir="/tmp"))  # short socket paths
    (base / "run").mkdir()
    registry = SlowRegistry(layout)  # type: ignore[abstract]  # pull RPCs only
    server = grpc.server(futures.ThreadPoolExecutor(8), interceptors=[ErrorInterceptor()])
    registry_pb2_grpc.add_RegistryServicer_to_server(registry, server)
    server.add_insecure_port(f"unix:{base}/run/registry.sock")
    server.start()
    service = Service(base, f"unix://{base}/run/registry.sock")
    try:
        yield service, registry
    finally:
        registry.release.set()
        service.stop()
        server.stop(0).wait()
        shutil.rmtree(base, ignore_errors=True)


def _pull_in_background(images: images_pb2_grpc.ImagesStub) -> threading.Thread:
    def pull() -> None:
        try:
            for _ in images.Pull(images_pb2.PullRequest(reference=REF)):
                pass
        except (errors.MuelleError, grpc.RpcError):
            pass  # the service dies under it

    thread = threading.Thread(target=pull, daemon=True)
    thread.start()
    return thread


def _big_digest(layout: Path) -> str:
    blobs = sorted((layout / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    return "sha256:" + blobs[-1].name


def _finish_and_check(service: Service, registry: SlowRegistry) -> None:
    images = service.start()
    last = list(images.Pull(images_pb2.PullRequest(reference=REF)))[-1]
    assert last.result.image_id
    report = images.Check(images_pb2.CheckRequest())
    assert list(report.problems) == [] and report.images == 1 and report.snapshots == 2
    store = service.root / "imagestore"
    assert list((store / "ingest").iterdir()) == []
    assert [p.name for p in (store / "snapshots").iterdir() if p.name.startswith(".")] == []


def _wait_for(state: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Wait (bounded) for a state that, once reached, stays: the pull is held meanwhile."""
    deadline = time.monotonic() + timeout
    while not state():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_kill_during_download_then_pull_resumes(env: tuple[Service, SlowRegistry],
                                                layout: Path) -> None:
    service, registry = env
    big = registry.held = _big_digest(layout)
    images = service.start()
    thread = _pull_in_background(images)
    assert registry.holding.wait(60), "the pull never reached the big layer"
    partial = service.root / "imagestore/ingest" / (
        registry.held.replace(":", "-") + ".partial")
    _wait_for(lambda: partial.exists() and partial.stat().st_size == HOLD_AT,
              "partial ingest never reached the hold point")
    service.kill9()
    registry.held = ""
    registry.release.set()
    thread.join(30)
    _finish_and_check(service, registry)
    # The kept partial was resumed, not downloaded again.
    assert (big, HOLD_AT) in registry.offsets


def test_kill_during_unpack_then_pull_succeeds(env: tuple[Service, SlowRegistry],
                                               layout: Path) -> None:
    service, registry = env
    registry.held = _big_digest(layout)
    images = service.start()
    thread = _pull_in_background(images)
    assert registry.holding.wait(60), "the pull never reached the big layer"
    snapshots = service.root / "imagestore/snapshots"
    # The big layer is unpacked as it downloads (follow.py) into a .tmp- dir: with the
    # download held, that unpack stands half-way (in data/big) until the kill, so no
    # polling race can miss it.
    _wait_for(lambda: list(snapshots.glob(".tmp-*/fs/data/big")), "never saw the unpack")
    service.kill9()
    registry.held = ""
    registry.release.set()
    thread.join(30)
    assert list(snapshots.glob(".tmp-*")), "the kill should leave a half-done unpack"
    _finish_and_check(service, registry)
