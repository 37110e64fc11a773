"""The Node.js client (clients/node) against a real engine over mutual TLS.

The engine's gateway listens on a loopback TCP port with a certificate from
muelle-certs' code and lets in ``client-*``; node's own test runner (``npm test``) then
pulls, lists, runs a container and is refused under an identity [authz] does not list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.pki import Pki
from tests.support.registry import free_port

NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Pki]]:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    gateway = pki.issue("gateway-local", ips=["127.0.0.1"])
    extra = (f'[addresses]\ngateway = "tcp://127.0.0.1:{free_port()}"\n'
             f'[tls.gateway]\nca = "{gateway.ca}"\ncert = "{gateway.cert}"\n'
             f'key = "{gateway.key}"\n[authz]\ngateway = ["client-*"]\n')
    engine = Engine(extra_config=extra)
    client = pki.issue("client-node", ips=[], kind="client")
    engine.env["MUELLE_CERT_PATH"] = str(Path(client.cert).parent)
    with engine:
        yield engine, pki


def test_node_client_runs_containers_over_mtls(tls_engine: tuple[Engine, Pki],
                                               busybox_ref: str) -> None:
    engine, pki = tls_engine
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed (apt-get install nodejs npm)"
    assert (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir(), \
        "clients/node has no node_modules: run `make node` (make test does)"
    denied = pki.issue("mallory", ips=[], kind="client")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUELLE_")}
    env.update(MUELLE_HOST=engine.host, MUELLE_CERT_PATH=engine.env["MUELLE_CERT_PATH"],
               MUELLE_TEST_IMAGE=busybox_ref,
               MUELLE_TEST_DENIED_CERT_PATH=str(Path(denied.cert).parent))
    proc = subprocess.run([npm, "test", "--silent"], cwd=NODE_DIR, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "# pass 4" in proc.stdout and "# fail 0" in proc.stdout, proc.stdout
    # The example script too: its output and exit code are the container's.
    example = subprocess.run([node, "example.js", busybox_ref, "sh", "-c",
                              "echo from-example; exit 5"], cwd=NODE_DIR, env=env,
                             capture_output=True, text=True, timeout=120)
    assert (example.returncode, example.stdout) == (5, "from-example\n"), example
    # The muelle CLI reaches the same gateway with the same files.
    assert engine.cli("ps", "-a").returncode == 0


def test_the_lean_client_speaks_tls_without_grpcio(tls_engine: tuple[Engine, Pki]) -> None:
    """The CLI's stdlib HTTP/2 client (clients/sdk/wire.py) does mutual TLS itself: a
    command over TLS costs no grpcio import, and a refused identity is named."""
    engine, pki = tls_engine
    script = ("import sys\n"
              "from clients.sdk.client import Client\n"
              "from vocab.errors import PermissionDenied\n"
              "c = Client(lean=True)\n"
              "print(c.version().api_version, 'grpc' in sys.modules)\n"
              "c2 = Client(lean=True, environ={'MUELLE_HOST': c.host,\n"
              "            'MUELLE_CERT_PATH': sys.argv[1]})\n"
              "try:\n"
              "    c2.images()\n"
              "except PermissionDenied as exc:\n"
              "    print(exc)\n")
    denied = Path(pki.issue("mallory", ips=[], kind="client").cert).parent
    proc = subprocess.run([sys.executable, "-c", script, str(denied)], env=engine.env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first.endswith(" False"), proc.stdout
    assert "'mallory' is not allowed to call gateway" in second
