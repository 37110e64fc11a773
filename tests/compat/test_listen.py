"""Where the Docker API listens: the unix socket (0660, root) and loopback TCP when asked."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import docker as dockerpy
import pytest

from engine import launcher
from services.core import config as configmod
from services.dockerapi.main import listener, tcp_address
from tests.compat.conftest import docker_cli
from tests.support.engine import Engine
from tests.support.pki import Pki
from tests.support.registry import free_port
from vocab.channel import TlsFiles
from vocab.errors import InvalidArgument


def test_the_socket_is_0660_root(docker_engine: Engine) -> None:
    st = os.stat(docker_engine.cfg.docker_socket())
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0


def test_plain_loopback_tcp_when_asked_for(tmp_path: Path) -> None:
    port = free_port()
    with Engine(services=launcher.ALL,
                extra_config=f'[dockerapi]\ntcp = "127.0.0.1:{port}"\n'
                             f'[tls.dockerapi]\ninsecure = true\n') as eng:
        proc = subprocess.run([docker_cli(), "-H", f"tcp://127.0.0.1:{port}", "version", "--format",
                               "{{.Server.APIVersion}}"], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ, DOCKER_CONFIG=str(tmp_path)))
        assert (proc.returncode, proc.stdout.strip()) == (0, "1.41"), proc.stderr
        assert eng.cfg.docker_socket().exists()


def _config(tmp_path: Path, text: str) -> configmod.Config:
    path = tmp_path / "muelle.toml"
    path.write_text(text)
    return configmod.load(str(path))


@pytest.mark.parametrize("address", ["0.0.0.0:2375", "10.1.2.3:2375", "example.com:2375"])
def test_plain_tcp_off_loopback_is_refused(tmp_path: Path, address: str) -> None:
    cfg = _config(tmp_path, f'[dockerapi]\ntcp = "{address}"\n[tls.dockerapi]\n'
                            f'insecure = true\n')
    with pytest.raises(InvalidArgument, match="loopback only"):
        listener(cfg)


def test_tcp_without_tls_or_insecure_is_refused(tmp_path: Path) -> None:
    cfg = _config(tmp_path, '[dockerapi]\ntcp = "127.0.0.1:2375"\n')
    with pytest.raises(InvalidArgument, match="without TLS"):
        listener(cfg)
    # A host alone: Docker's ports, 2376 for TLS (the default), 2375 for plain.
    assert tcp_address("127.0.0.1") == ("127.0.0.1", 2376)
    assert tcp_address("tcp://[::1]") == ("::1", 2376)
    assert tcp_address("127.0.0.1", tls=False) == ("127.0.0.1", 2375)
    assert tcp_address("tcp://127.0.0.1:2376") == ("127.0.0.1", 2376)
    with pytest.raises(InvalidArgument, match="host:port"):
        tcp_address("127.0.0.1:http")


def test_docker_cli_over_mutual_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's --tlsverify on 2376's terms: the server's certificate checked against the
    CA, the client's identity against [authz].dockerapi; no certificate, another CA's or
    an identity not listed gets nothing."""
    pki = Pki(tmp_path / "pki")
    server = pki.issue("dockerapi-local", ips=["127.0.0.1"])
    port = free_port()
    config = (f'[dockerapi]\ntcp = "127.0.0.1:{port}"\n'
              f'[tls.dockerapi]\nca = "{server.ca}"\ncert = "{server.cert}"\n'
              f'key = "{server.key}"\n[authz]\ndockerapi = ["client-*"]\n')

    def docker(files: TlsFiles | None, *args: str) -> subprocess.CompletedProcess[str]:
        tls = ["--tlsverify", "--tlscacert", files.ca, "--tlscert", files.cert,
               "--tlskey", files.key] if files else []
        return subprocess.run([docker_cli(), "-H", f"tcp://127.0.0.1:{port}", *tls, *args],
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, DOCKER_CONFIG=str(tmp_path)))

    with Engine(services=launcher.ALL, extra_config=config):
        ok = docker(pki.issue("client-me", ips=[]), "version", "--format",
                    "{{.Server.APIVersion}}")
        assert (ok.returncode, ok.stdout.strip()) == (0, "1.41"), ok.stderr
        listed = docker(pki.issue("client-me", ips=[]), "ps", "-a", "--format", "{{.ID}}")
        assert listed.returncode == 0, listed.stderr
        refused = docker(pki.issue("mallory", ips=[]), "ps")
        assert refused.returncode != 0 and "mallory" in refused.stderr, refused.stderr
        other_ca = Pki(tmp_path / "other", name="other").issue("client-x", ips=[])
        assert docker(other_ca, "ps").returncode != 0
        plain = docker(None, "ps")
        assert plain.returncode != 0
        me = pki.issue("client-py", ips=[])
        # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE (set on this machine) override a
        # session's own CA for every request: a user of a private CA unsets them too.
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        client = dockerpy.DockerClient(
            base_url=f"https://127.0.0.1:{port}", version="1.41",
            tls=dockerpy.tls.TLSConfig(client_cert=(me.cert, me.key), verify=me.ca))
        try:  # docker-py over the same TLS, as DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=... does
            assert client.version()["ApiVersion"] == "1.41"
            assert client.containers.list(all=True) == []
        finally:
            client.close()
