"""A throwaway certificate authority for TLS tests, made with the openssl CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str = "ca") -> tuple[Path, Path]:
    """(certificate, key) of a new self-signed CA in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN=muelle test {name}", "-keyout", f"{name}.key",
             "-out", f"{name}.crt", cwd=d)
    return d / f"{name}.crt", d / f"{name}.key"


def issue(d: Path, ca: tuple[Path, Path], name: str, ip: str = "127.0.0.1",
          client: bool = False) -> tuple[Path, Path]:
    """(certificate, key) signed by ``ca``: a server certificate for ``ip``, or a client
    certificate."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text("extendedKeyUsage=clientAuth\n" if client
                   else f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", f"{name}.crt",
             cwd=d)
    return d / f"{name}.crt", d / f"{name}.key"
