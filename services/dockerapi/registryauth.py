"""``X-Registry-Auth``: one pull's or push's registry credentials, as Docker clients send them.

The header is base64 (URL-safe or standard, padded or not: dockerd reads both) of a JSON
AuthConfig: ``username``, ``password``, ``auth`` (base64 of "user:password"),
``serveraddress``, ``registrytoken`` (a bearer token for the registry itself) and
``identitytoken`` (an OAuth refresh token for the registry's token server). ``e30=``
("{}") or no header means none: the engine's stored logins are used then. The result
goes to engine.v1 with that one call and is never stored.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from muelle.types.v1 import types_pb2

from services.dockerapi.errors import ApiError, bad_request

HEADER = "x-registry-auth"
_STRINGS = ("username", "password", "auth", "serveraddress", "identitytoken",
            "registrytoken", "email")


def _invalid(reason: str) -> ApiError:
    # dockerd's wording for a header it cannot read (registry.DecodeAuthConfig).
    return bad_request(f"invalid X-Registry-Auth header: {reason}")


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe alphabet, with or without padding."""
    text = text.strip().translate(str.maketrans("+/", "-_")).rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _config(header: str) -> dict[str, Any]:
    try:
        doc = json.loads(_b64decode(header))
    except (binascii.Error, ValueError) as exc:
        raise _invalid(str(exc) or type(exc).__name__) from None
    if not isinstance(doc, dict):
        raise _invalid("not a JSON object")
    for key in _STRINGS:
        if not isinstance(doc.get(key, ""), str):
            raise _invalid(f"{key} must be a string")
    return doc


def server_host(address: str) -> str:
    """host[:port] of a client's server address ("https://host/v1/" -> "host")."""
    host = address.removeprefix("https://").removeprefix("http://").rstrip("/")
    return host.removesuffix("/v1").removesuffix("/v2")


def credentials(header: str) -> types_pb2.RegistryCredentials | None:
    """The call's credentials, None when the header is absent or empty ("{}"); a header
    that cannot be read is a 400, not a silent pull without them."""
    if not header.strip():
        return None
    doc = _config(header)
    if doc.get("identitytoken"):
        raise bad_request("X-Registry-Auth: identitytoken (an OAuth refresh token) is not "
                          "supported by muelle; send username and password or "
                          "registrytoken")
    username, password = doc.get("username", ""), doc.get("password", "")
    if doc.get("auth") and not username:
        try:
            pair = _b64decode(doc["auth"]).decode()
        except (binascii.Error, ValueError) as exc:
            raise _invalid(f"auth: {exc}") from None
        username, sep, password = pair.partition(":")
        if not sep:
            raise _invalid("auth must be base64 of user:password")
    creds = types_pb2.RegistryCredentials(
        server=server_host(doc.get("serveraddress", "")), username=username,
        password=password, registry_token=doc.get("registrytoken", ""))
    if not (creds.username or creds.password or creds.registry_token):
        return None  # "{}" or only a server address: nothing to authenticate with
    return creds


def from_request(headers: dict[str, str]) -> types_pb2.RegistryCredentials | None:
    return credentials(headers.get(HEADER, ""))
