"""TLS to the real distribution registry: a CA from certs.d/<host:port>/, client
certificates, and a clear error when the registry's certificate is not trusted."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.core.config import RegistryConfig
from services.registry.http import RegistryHTTP
from tests.support.images import build_busybox_layout, push_layout
from tests.support.registry import LocalRegistry
from tests.support.tls import issue, make_ca
from vocab.errors import Unavailable

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d)
    return {"ca": ca, "server": issue(d, ca, "server"),
            "client": issue(d, ca, "client", client=True)}


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory,
                 pki: dict[str, tuple[Path, Path]]) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("tls-registry"), tls=pki["server"]) as reg:
        layout = tmp_path_factory.mktemp("layout") / "bb"
        build_busybox_layout(layout, tag="1")
        push_layout(layout, f"{reg.host}/demo/busybox:1", tag="1")
        yield reg


def _manifest(http: RegistryHTTP, host: str) -> int:
    resp = http.request("GET", host, "demo/busybox", "/v2/demo/busybox/manifests/1",
                        kind="manifest", what="demo/busybox:1", headers={"Accept": MANIFEST})
    try:
        return resp.status_code
    finally:
        resp.close()


def test_certs_d_ca_makes_https_work(tls_registry: LocalRegistry, tmp_path: Path,
                                     pki: dict[str, tuple[Path, Path]]) -> None:
    certs = tmp_path / "certs.d"
    (certs / tls_registry.host).mkdir(parents=True)
    shutil.copy(pki["ca"][0], certs / tls_registry.host / "ca.crt")
    http = RegistryHTTP(RegistryConfig(certs_dir=str(certs)))
    try:
        # loopback, but certs.d names it: HTTPS, verified against the test CA
        assert http.base_url(tls_registry.host).startswith("https://")
        assert _manifest(http, tls_registry.host) == 200
    finally:
        http.close()


def test_untrusted_certificate_is_a_clear_error(tls_registry: LocalRegistry,
                                                tmp_path: Path) -> None:
    other = tmp_path / "certs.d" / tls_registry.host
    other.mkdir(parents=True)
    shutil.copy(make_ca(tmp_path / "other")[0], other / "ca.crt")  # the wrong CA
    http = RegistryHTTP(RegistryConfig(certs_dir=str(tmp_path / "certs.d")))
    try:
        with pytest.raises(Unavailable, match="TLS certificate is not trusted; put its CA"):
            _manifest(http, tls_registry.host)
    finally:
        http.close()


def test_client_certificate(tmp_path: Path, pki: dict[str, tuple[Path, Path]]) -> None:
    with LocalRegistry(tmp_path / "reg", tls=pki["server"], client_ca=pki["ca"][0]) as reg:
        certs = tmp_path / "certs.d" / reg.host
        certs.mkdir(parents=True)
        shutil.copy(pki["ca"][0], certs / "ca.crt")
        http = RegistryHTTP(RegistryConfig(certs_dir=str(tmp_path / "certs.d")))
        try:
            with pytest.raises(Unavailable):  # no client certificate: the handshake fails
                http.request("GET", reg.host, "x", "/v2/", kind="registry", what=reg.host)
        finally:
            http.close()
        shutil.copy(pki["client"][0], certs / "client.cert")
        shutil.copy(pki["client"][1], certs / "client.key")
        http = RegistryHTTP(RegistryConfig(certs_dir=str(tmp_path / "certs.d")))
        try:
            resp = http.request("GET", reg.host, "x", "/v2/", kind="registry", what=reg.host)
            assert resp.status_code == 200
            resp.close()
        finally:
            http.close()
        # The mirror's anonymous client trusts the CA but never presents the engine's
        # client certificate.
        http = RegistryHTTP(RegistryConfig(certs_dir=str(tmp_path / "certs.d")),
                            anonymous=True)
        try:
            with pytest.raises(Unavailable):
                http.request("GET", reg.host, "x", "/v2/", kind="registry", what=reg.host)
        finally:
            http.close()
