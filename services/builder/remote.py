"""ADD of a URL: the file is fetched by the builder (the gateway's host), as the classic
builder's daemon does. It is stored 0600, never extracted, named by the URL's last path
element unless the destination names the file, and dated by Last-Modified when the
server sends one. Only http and https; redirects are followed (urllib's limit)."""

from __future__ import annotations

import email.utils
import os
import posixpath
import shutil
import urllib.error
import urllib.parse
import urllib.request

from vocab.errors import InvalidArgument, Unavailable

_TIMEOUT = 60


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch(url: str, directory: str) -> str:
    """Downloads ``url`` into ``directory``; returns the file's name there."""
    path = urllib.parse.urlparse(url).path
    name = posixpath.basename(path.rstrip("/")) if path else ""
    if not name or name in (".", ".."):
        name = "__unnamed__"  # Docker needs a name only when dest is a directory
    target = os.path.join(directory, name)
    request = urllib.request.Request(url, headers={"User-Agent": "muelle-builder"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as reply, \
                open(target, "wb") as out:
            shutil.copyfileobj(reply, out, 1 << 20)
            modified = reply.headers.get("Last-Modified")
    except urllib.error.HTTPError as exc:
        raise InvalidArgument(f"failed to GET {url} with status {exc.code} "
                              f"{exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unavailable(f"failed to GET {url}: {getattr(exc, 'reason', exc)}") from None
    os.chmod(target, 0o600)
    if modified:
        when = email.utils.parsedate_to_datetime(modified).timestamp()
        os.utime(target, (when, when))
    return name
