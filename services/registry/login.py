"""``Login`` / ``Logout``: check credentials against a registry, keep them on disk.

The check happens here, in the registry service (the only HTTP client of registries):
``GET /v2/`` with the credentials, Basic or through the token server. Only credentials
that work are stored, in the docker-style auth file the service reads for pulls and
pushes, and the running service starts using them at once.
"""

from __future__ import annotations

from pathlib import Path

from services.core.logging import get_logger
from services.registry import credstore
from services.registry.http import RegistryHTTP
from vocab.errors import InvalidArgument


class Logins:
    def __init__(self, http: RegistryHTTP, auth_file: Path) -> None:
        self._http = http
        self.auth_file = auth_file

    def login(self, server: str, username: str, password: str) -> str:
        """Check and store; returns the host the credentials are stored under."""
        host = credstore.server_key(server)
        if not username:
            raise InvalidArgument("a username is required")
        if not password:
            raise InvalidArgument("a password is required")
        if ":" in username:
            raise InvalidArgument("a username must not contain ':'")
        self._http.ping(host, (username, password))
        credstore.store(self.auth_file, host, username, password)
        self._http.set_credentials(host, (username, password))
        get_logger(registry=host).info("logged in", username=username)
        return host

    def logout(self, server: str) -> str:
        host = credstore.server_key(server)
        credstore.remove(self.auth_file, host)
        self._http.set_credentials(host, None)
        get_logger(registry=host).info("logged out")
        return host
