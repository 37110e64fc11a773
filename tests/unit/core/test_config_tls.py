"""[tls] and [authz] in the config file: per-service overrides and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core import config
from vocab.channel import TlsFiles
from vocab.errors import InvalidArgument

EXAMPLES = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "across-hosts"


def _load(tmp_path: Path, text: str) -> config.Config:
    f = tmp_path / "m.toml"
    f.write_text(text)
    return config.load(str(f))


def test_a_service_table_overrides_the_common_one(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUELLE_TLS_KEY", "/not/this.pem")  # the CLI's, not a service's
    cfg = _load(tmp_path, '[tls]\nca = "/t/ca.pem"\ncert = "/t/c.pem"\nkey = "/t/k.pem"\n'
                          '[tls.gateway]\ncert = "/t/g.pem"\nkey = "/t/gk.pem"\n'
                          '[authz]\ngateway = ["client-*"]\n')
    assert cfg.tls_files("gateway") == TlsFiles("/t/ca.pem", "/t/g.pem", "/t/gk.pem")
    assert cfg.tls_files("shim") == TlsFiles("/t/ca.pem", "/t/c.pem", "/t/k.pem")
    assert cfg.authz == {"gateway": ["client-*"]}
    assert not cfg.tls_files("shim").insecure


@pytest.mark.parametrize(("text", "message"), [
    ('[tls]\ninsecure = "yes"\n', "tls.insecure must be true or false"),
    ('[tls]\npassword = "x"\n', "unknown key tls.password"),
    ('[tls.printer]\ncert = "x"\n', "unknown table tls.printer"),
    ('[tls.gateway]\nverify = false\n', "unknown key tls.gateway.verify"),
    ('[authz]\ngateway = "client-*"\n', "authz.gateway must be an array"),
    ('[authz]\ngateway = [1]\n', "items of authz.gateway must be strings"),
    ('[authz]\nprinter = ["x"]\n', "unknown service authz.printer"),
])
def test_bad_tls_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _load(tmp_path, text)


def test_the_across_hosts_examples_load() -> None:
    a = config.load(str(EXAMPLES / "host-a.toml"))
    assert a.authz["registry"] == ["imagestore-*", "gateway-*"]
    assert a.tls_files("registry").cert == "/etc/muelle/tls/cert.pem"
    b = config.load(str(EXAMPLES / "host-b.toml"))
    assert b.tls_files("gateway").cert == "/etc/muelle/tls/gateway/cert.pem"
    assert b.tls_files("imagestore").ca == "/etc/muelle/tls/ca.pem"
    assert b.address("registry") == "tcp://10.0.0.1:7401"
