"""Certificate renewal on a running service process: `muelle-certs renew` picked up at
the next handshake, SIGHUP rereading the files at once (the process lives on), and the
expiry warning at start and at each reload.

The service is the real registry service (``python -m services.registry.main``) on a
loopback TCP port with mutual TLS; the caller a plain ``ssl`` client that reports which
certificate the service presented.
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support import processes
from tests.support.pki import Pki
from tests.support.registry import free_port
from vocab.channel import TlsFiles

CERTS = str(Path(sys.executable).parent / "muelle-certs")


class Service:
    def __init__(self, tmp: Path, files: TlsFiles) -> None:
        self.port = free_port()
        self.log = tmp / "registry.log"
        config = tmp / "muelle.toml"
        config.write_text(f'root = "{tmp / "root"}"\nrun = "{tmp / "run"}"\n'
                          'log_format = "json"\n'
                          f'[tls]\nca = "{files.ca}"\ncert = "{files.cert}"\n'
                          f'key = "{files.key}"\n[authz]\nregistry = ["imagestore-*"]\n')
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.registry.main", "--config", str(config),
                 "--address", f"tcp://127.0.0.1:{self.port}"],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def lines(self, event: str) -> int:
        return self.log.read_text(errors="replace").count(f'"event": "{event}"')

    def wait_for(self, event: str, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.lines(event) < count:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, (event, self.log.read_text())
            time.sleep(0.05)

    def presented(self, client: TlsFiles, timeout: float = 30) -> bytes:
        """The DER certificate the service shows a new connection (waits for the port)."""
        ctx = ssl.create_default_context(cafile=client.ca)
        ctx.load_cert_chain(client.cert, client.key)
        ctx.set_alpn_protocols(["h2"])
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw, \
                        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                    der = conn.getpeercert(binary_form=True)
                    assert der is not None
                    return der
            except ConnectionRefusedError:
                assert self.proc.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.05)

    def stop(self) -> None:
        processes.stop(self.proc)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def expiring(pki: Pki, tmp_path: Path) -> Iterator[tuple[Service, TlsFiles]]:
    files = pki.issue("registry-a", days=10)  # within the 30 days' warning
    service = Service(tmp_path, files)
    yield service, files
    service.stop()


def _der(path: str) -> bytes:
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).public_bytes(Encoding.DER)


def test_renew_is_used_without_a_restart_and_expiry_is_warned(
        expiring: tuple[Service, TlsFiles], pki: Pki) -> None:
    service, files = expiring
    client = pki.issue("imagestore-x", ips=[])
    assert service.presented(client) == _der(files.cert)
    assert service.lines("certificate expires soon") == 1  # at start
    old = _der(files.cert)
    renewed = subprocess.run([CERTS, "renew", str(pki.ca_dir), str(Path(files.cert).parent),
                              "--days", "20"], capture_output=True, text=True, timeout=60)
    assert renewed.returncode == 0, renewed.stderr
    assert _der(files.cert) != old
    assert service.presented(client) == _der(files.cert)  # the next handshake: renewed
    assert service.lines("TLS certificates reloaded") == 1
    assert service.lines("certificate expires soon") == 2  # 20 days: warned again


def test_sighup_rereads_the_files_and_the_service_lives_on(
        expiring: tuple[Service, TlsFiles], pki: Pki) -> None:
    """SIGHUP makes the next handshake reread the files even when nothing about them
    changed (a renewal copied with its old mtime and size would not be noticed); its
    default action would have ended the service."""
    service, files = expiring
    client = pki.issue("imagestore-x", ips=[])
    service.presented(client)
    assert service.lines("TLS certificates reloaded") == 0
    service.proc.send_signal(signal.SIGHUP)
    service.wait_for("SIGHUP: TLS files are reread at the next handshake and call", 1)
    assert service.presented(client) == _der(files.cert)
    service.wait_for("TLS certificates reloaded", 1)
    assert service.proc.poll() is None
    assert service.lines("certificate expires soon") == 2  # the reload warns again
