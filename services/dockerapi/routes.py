"""Routing: the /v1.N prefix, the method and path table, 404/405 for the rest.

Paths are matched after the version prefix is taken off; image references appear
unescaped in them (``/images/127.0.0.1:5000/x/y:1/json``), so image routes match greedily.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from services.dockerapi.errors import ApiError
from services.dockerapi.http import API_VERSION, Request, Responder

MIN_API_VERSION = "1.24"
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")

Endpoint = Callable[[Request, Responder], Awaitable[None]]


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def strip_version(req: Request) -> None:
    """Take /v1.N off the path into ``req.api_version``; refuse what we do not speak."""
    m = _VERSIONED.match(req.path)
    if not m:
        return
    asked = (int(m.group(1)), int(m.group(2)))
    shown = f"{asked[0]}.{asked[1]}"
    if asked > _version(API_VERSION):
        raise ApiError(400, f"client version {shown} is too new. Maximum supported API "
                            f"version is {API_VERSION}")
    if asked < _version(MIN_API_VERSION):
        raise ApiError(400, f"client version {shown} is too old. Minimum supported API "
                            f"version is {MIN_API_VERSION}, please upgrade your client to a "
                            "newer version")
    req.api_version = shown
    req.path = m.group(3)


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Endpoint]] = []

    def add(self, method: str, pattern: str, endpoint: Endpoint) -> None:
        """``pattern``: a path with ``{name}`` (one segment) or ``{name:path}`` (greedy)."""
        regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", pattern)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self._routes.append((method, re.compile(f"^{regex}$"), endpoint))

    async def __call__(self, req: Request, out: Responder) -> None:
        strip_version(req)
        allowed = False
        for method, regex, endpoint in self._routes:
            m = regex.match(req.path)
            if m is None:
                continue
            if method != req.method:
                allowed = True
                continue
            req.params = m.groupdict()
            await endpoint(req, out)
            return
        if allowed:
            raise ApiError(405, f"method {req.method} not allowed on {req.path}")
        raise ApiError(404, f"page not found: {req.method} {req.path}")
