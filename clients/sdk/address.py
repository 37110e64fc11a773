"""Where the gateway is: --host, else $MUELLE_HOST, else unix://$MUELLE_RUN/gateway.sock;
and the TLS files to reach it over TCP (Docker's conventions, with MUELLE_ names)."""

from __future__ import annotations

import os

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_RUN = "/run/muelle"


def resolve_host(host: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if host:
        return host
    if env.get("MUELLE_HOST"):
        return env["MUELLE_HOST"]
    run = env.get("MUELLE_RUN") or DEFAULT_RUN
    return f"unix://{run.rstrip('/')}/gateway.sock"


def resolve_tls(host: str, environ: Mapping[str, str] | None = None) -> tuple[str, str, str] | None:
    """(ca, cert, key) for mutual TLS to a TCP ``host``, or None (unix socket, or nothing
    configured: plain TCP, which the channel allows on loopback only).

    As the docker CLI: $MUELLE_CERT_PATH holds ca.pem, cert.pem and key.pem (default
    ~/.muelle when $MUELLE_TLS_VERIFY is set); $MUELLE_TLS_CACERT, $MUELLE_TLS_CERT and
    $MUELLE_TLS_KEY name single files (the CLI's --tlscacert, --tlscert, --tlskey)."""
    if host.startswith("unix:"):
        return None
    env = os.environ if environ is None else environ
    files = (env.get("MUELLE_TLS_CACERT", ""), env.get("MUELLE_TLS_CERT", ""),
             env.get("MUELLE_TLS_KEY", ""))
    directory = env.get("MUELLE_CERT_PATH", "")
    if not directory and not any(files) and not env.get("MUELLE_TLS_VERIFY"):
        return None
    directory = directory or os.path.join(os.path.expanduser("~"), ".muelle")
    defaults = ("ca.pem", "cert.pem", "key.pem")
    ca, cert, key = (given or os.path.join(directory, name)
                     for given, name in zip(files, defaults, strict=True))
    return ca, cert, key


def plain_allowed(host: str) -> bool:
    """Whether ``host`` may be reached without TLS: a unix socket or a loopback address
    (ipaddress would cost the CLI an import; these are the spellings that reach one)."""
    if host.startswith("unix:"):
        return True
    hostport = host[len("tcp://"):] if host.startswith("tcp://") else host
    name = hostport.rpartition(":")[0].strip("[]") if ":" in hostport else hostport
    return name in ("localhost", "::1") or name.startswith("127.")
