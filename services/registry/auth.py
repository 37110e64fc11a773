"""Registry authentication: WWW-Authenticate challenges, Bearer tokens, credentials.

Token flow (distribution token.md, SPECS §3.2): a 401 carries a challenge such as
``Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"``;
we GET ``realm?service=..&scope=..`` (with Basic credentials when config.json has some)
and retry with ``Authorization: Bearer <token>``. Tokens are cached per (host, scope)
until they expire (60 s when the server does not say).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vocab.errors import InvalidArgument

DEFAULT_TOKEN_TTL = 60.0
# Refresh a little early so a token does not expire in flight.
_EXPIRY_MARGIN = 5.0

_PARAM = re.compile(
    r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?\s*,?'
)


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: scheme (lowercased) and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict, hash=False)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate value (RFC 7235): several challenges, quoted or bare params."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        match = _PARAM.match(header, pos)
        if not match or match.end() == pos:
            break
        pos = match.end()
        name, value = match.group(1), match.group(2)
        if value is None:
            # A bare token starts a new challenge ("Bearer realm=...": the first
            # parameter follows the scheme after a space).
            challenges.append(Challenge(name.lower(), {}))
            continue
        if not challenges:
            continue  # a parameter without a scheme: ignore
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        challenges[-1].params[name.lower()] = value
    return challenges


def scope_for(path: str, actions: str = "pull") -> str:
    return f"repository:{path}:{actions}"


class TokenCache:
    """Bearer tokens by (host, scope) until they expire; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, host: str, scope: str) -> str | None:
        with self._lock:
            entry = self._tokens.get((host, scope))
            if entry is None:
                return None
            token, expires = entry
            if self._clock() >= expires:
                del self._tokens[(host, scope)]
                return None
            return token

    def forget(self, host: str) -> None:
        """Drop every token of ``host`` (its credentials changed)."""
        with self._lock:
            for key in [k for k in self._tokens if k[0] == host]:
                del self._tokens[key]

    def put(self, host: str, scope: str, token: str, expires_in: float) -> None:
        ttl = max(expires_in, DEFAULT_TOKEN_TTL) - _EXPIRY_MARGIN
        with self._lock:
            self._tokens[(host, scope)] = (token, self._clock() + ttl)


def _normalise_host(key: str) -> str:
    host = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def host_of(server: str) -> str:
    """The registry host a credential's server address names ("https://host/v1/" ->
    "host"; Docker Hub's aliases -> "docker.io")."""
    return _normalise_host(server)


def load_credentials(auth_file: str) -> dict[str, tuple[str, str]]:
    """host -> (username, password) from a docker-style config.json ("auths" section)."""
    if not auth_file:
        return {}
    path = Path(auth_file)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"registry auth file {path}: {exc}") from None
    creds: dict[str, tuple[str, str]] = {}
    auths = data.get("auths") if isinstance(data, dict) else None
    for key, entry in (auths or {}).items():
        if not isinstance(entry, dict):
            continue
        user, password = entry.get("username", ""), entry.get("password", "")
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument(f"registry auth file {path}: bad auth for {key}") \
                    from None
        if user:
            creds[_normalise_host(key)] = (str(user), str(password))
    return creds
