"""The registry service as a real subprocess, plus images pushed to the real registry."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from muelle.registry.v1 import registry_pb2_grpc

from engine.launcher import healthy
from services.core.client import connect
from tests.support.images import push_multi_platform
from tests.support.registry import LocalRegistry, free_port

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def registry_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Address of a running ``muelle-registry`` (python -m services.registry.main)."""
    with registry_service_with(tmp_path_factory.mktemp("registry-svc"), "") as address:
        yield address


@pytest.fixture(scope="module")
def stub(registry_service: str) -> registry_pb2_grpc.RegistryStub:
    return connect(registry_service, registry_pb2_grpc.RegistryStub, "registry")


@pytest.fixture(scope="module")
def multi_platform(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
                   ) -> dict[str, str]:
    """An OCI index tagged ``demo/multi:2`` with an amd64 and an arm64 image.

    Returns {"ref", "index", "amd64", "arm64"} (reference and digests)."""
    return push_multi_platform(registry.url, tmp_path_factory.mktemp("multi"), "demo/multi:2")


@contextlib.contextmanager
def registry_service_with(tmp: Path, settings: str, address: str = "") -> Iterator[str]:
    """A ``muelle-registry`` process with ``[registry]`` ``settings`` (TOML lines); yields
    its gRPC address (a unix socket in ``tmp`` unless ``address`` is given)."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "muelle.toml"
    # Plain gRPC on a loopback TCP address must be asked for (no effect on a unix socket).
    config.write_text(f'root = "{tmp}"\nrun = "{tmp}"\n[tls]\ninsecure = true\n'
                      f'[registry]\n{settings}')
    address = address or f"unix://{tmp}/registry.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUELLE_")}
    with open(tmp / "registry.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.registry.main", "--config", str(config),
             "--address", address, "--root", str(tmp), "--run", str(tmp)],
            cwd=REPO_ROOT, stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + 30
        while not healthy(address, timeout=0.5):
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp / "registry.log").read_text()[-2000:]
            time.sleep(0.05)
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def mirror_service(tmp: Path, upstream: str, settings: str = "",
                   address: str = "") -> Iterator[str]:
    """A registry service (shared cache on) mirroring ``upstream``, with more ``[registry]``
    ``settings`` (gRPC on ``address`` if given); yields the mirror's host:port."""
    port = free_port()
    with registry_service_with(tmp, f'cache_max_bytes = 100000000\n'
                               f'mirror_listen = "127.0.0.1:{port}"\n'
                               f'mirror_upstream = "{upstream}"\n{settings}', address):
        yield f"127.0.0.1:{port}"
