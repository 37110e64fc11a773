"""Writing the docker-style credentials file (``{"auths": {host: {"auth": b64}}}``).

Reading is ``auth.load_credentials``. Writes keep every other key of the file (a real
~/.docker/config.json has more than "auths"), go through a temp file + fsync + rename so
a crash never leaves half a file, and the file is always mode 0600: it holds passwords.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

from services.core.config import Config
from vocab.errors import InvalidArgument, NotFound
from vocab.reference import DEFAULT_DOMAIN, check_domain

# Docker stores Hub credentials under this key; we read both spellings.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_lock = threading.Lock()


def auth_file_path(cfg: Config) -> Path:
    """``registry.auth_file`` when set, else ``<root>/registry/config.json``: per engine,
    so engines side by side (and tests) never share credentials by accident."""
    return Path(cfg.registry.auth_file) if cfg.registry.auth_file \
        else cfg.state_dir("registry") / "config.json"


def server_key(server: str) -> str:
    """The host a login is for: "docker.io" for an empty server or Hub's aliases."""
    host = server.strip().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if host in ("", "index.docker.io", "registry-1.docker.io", DEFAULT_DOMAIN):
        return DEFAULT_DOMAIN
    try:
        return check_domain(host)
    except InvalidArgument:
        raise InvalidArgument(f"invalid registry host {server!r}") from None


def _file_key(host: str) -> str:
    return DOCKER_HUB_KEY if host == DEFAULT_DOMAIN else host


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"registry auth file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"registry auth file {path}: not a JSON object")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # also when tmp was left by a crash with other bits
        json.dump(data, f, indent="\t")
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def store(path: Path, host: str, username: str, password: str) -> None:
    """Record credentials for ``host`` (replacing any it had)."""
    with _lock:
        data = _read(path)
        auths = data.get("auths")
        if not isinstance(auths, dict):
            auths = data["auths"] = {}
        for key in _aliases(auths, host):
            del auths[key]
        raw = base64.b64encode(f"{username}:{password}".encode()).decode()
        auths[_file_key(host)] = {"auth": raw}
        _write(path, data)


def remove(path: Path, host: str) -> None:
    """Forget the credentials of ``host``; NotFound when it had none."""
    with _lock:
        data = _read(path)
        auths = data.get("auths")
        if not isinstance(auths, dict) or not _aliases(auths, host):
            raise NotFound(f"Not logged in to {host}")
        for key in _aliases(auths, host):
            del auths[key]
        _write(path, data)


def _aliases(auths: dict[str, Any], host: str) -> list[str]:
    """Keys of ``auths`` that name ``host`` (with a scheme, a path, or Hub's aliases)."""
    out = []
    for key in auths:
        try:
            if server_key(key) == host:
                out.append(key)
        except InvalidArgument:
            continue
    return out
