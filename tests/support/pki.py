"""TLS material for tests, made by muelle-certs' own code (clients/certs/authority.py)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from clients.certs import authority
from vocab.channel import TlsFiles


class Pki:
    """A CA in ``dir``/``name`` and the certificates it issues, each in its own directory
    (Docker's layout: ca.pem, cert.pem, key.pem)."""

    def __init__(self, base: Path, name: str = "ca") -> None:
        self.base = base
        self.ca_dir = base / name
        authority.init_ca(self.ca_dir, f"muelle test {name}")

    def issue(self, identity: str, ips: Sequence[str] = ("127.0.0.1",),
              dns: Sequence[str] = (), kind: str = "both", expired: bool = False,
              days: int = 2) -> TlsFiles:
        out = self.base / f"{self.ca_dir.name}-{identity}"
        start = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
                 if expired else None)
        authority.issue(self.ca_dir, out, identity, dns, ips, kind,
                        days=1 if expired else days, not_before=start)
        return TlsFiles.from_dir(out)
