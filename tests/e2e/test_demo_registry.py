"""deploy/demo-registry.sh (make demo, the README): a port something else listens on is
never pushed into; the default 5000 gives way to a free port, an asked-for one is an error."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.registry import free_port

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mu-demo-") as d:
        try:
            yield Path(d)
        finally:
            subprocess.run(["deploy/demo-registry.sh", "down"], cwd=REPO,
                           env=dict(os.environ, MUELLE_RUN=d), capture_output=True)


def _script(run_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["deploy/demo-registry.sh", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120,
                          env=dict(os.environ, MUELLE_RUN=str(run_dir), **env))


def _listen(port: int) -> socket.socket:
    """Something else (not a registry) on 127.0.0.1:port."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def test_a_busy_asked_for_port_is_a_clear_error(run_dir: Path) -> None:
    port = free_port()
    with _listen(port):
        proc = _script(run_dir, "up", DEMO_REGISTRY_PORT=str(port))
    assert proc.returncode == 1
    assert f"port {port} (DEMO_REGISTRY_PORT) is already in use" in proc.stderr
    assert "pushing" not in proc.stderr and proc.stdout == ""
    assert not (run_dir / "demo-registry").exists()


def test_a_busy_default_port_gives_way_to_a_free_one(run_dir: Path) -> None:
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):  # taken already here: the same case
            stack.enter_context(_listen(5000))
        proc = _script(run_dir, "up")
        assert proc.returncode == 0, proc.stderr
        assert "port 5000 is in use" in proc.stderr
        exports = dict(kv.split("=", 1) for kv in proc.stdout.split()[1:])
        assert exports["REGISTRY"] != "127.0.0.1:5000"
        assert exports["IMAGE"] == exports["REGISTRY"] + "/demo/busybox:1"
        # the image is in the registry the script started, and a second `up` reuses it
        url = f"http://{exports['REGISTRY']}/v2/demo/busybox/tags/list"
        tags = subprocess.run(["curl", "-fs", url], capture_output=True, text=True)
        assert '"1"' in tags.stdout
        again = _script(run_dir, "up")
        assert again.returncode == 0 and again.stdout == proc.stdout
    assert _script(run_dir, "down").returncode == 0
    assert not (run_dir / "demo-registry").exists()
