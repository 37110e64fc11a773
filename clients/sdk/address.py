"""Where the gateway is: --host, else $MUELLE_HOST, else unix://$MUELLE_RUN/gateway.sock."""

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
