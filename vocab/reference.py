"""Image references, normalised the way Docker does (distribution/reference normalize.go).

    parse("busybox").canonical        == "docker.io/library/busybox:latest"
    parse("127.0.0.1:5000/demo/bb:1").repository == "127.0.0.1:5000/demo/bb"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vocab import digest as digestmod
from vocab.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
# DNS labels are at most 63 characters: a longer one passes Docker's grammar but fails
# IDNA encoding in the HTTP client (UnicodeError), so it is refused here, with the port
# (at most 5 digits; its value is checked by check_domain).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(
    rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::([0-9]{{1,5}}))?$", re.ASCII)
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised reference. ``tag`` is empty only when a digest was given."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        """domain/path: what images are grouped by."""
        return f"{self.domain}/{self.path}"

    @property
    def canonical(self) -> str:
        """domain/path[:tag][@digest]."""
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def familiar(self) -> str:
        """The short form Docker prints: "busybox:latest", "127.0.0.1:5000/demo/bb:1"."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path.removeprefix(OFFICIAL_PREFIX) if self.path.count("/") == 1 \
                else self.path
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, "")

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, "", digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and not first.startswith("[")):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(text: str) -> Reference:
    """Parse and normalise ``text``; InvalidArgument with the reason if malformed."""
    ref = text.strip()
    if not ref:
        raise InvalidArgument("invalid reference format: empty reference")
    if ref != text or any(c.isspace() for c in ref):
        raise InvalidArgument(f"invalid reference format: {text!r} contains whitespace")
    name, digest = ref, ""
    if "@" in ref:
        name, _, digest = ref.partition("@")
        try:
            digestmod.validate(digest)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid reference format: {exc}") from None
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid reference format: bad tag {tag!r} in {text!r}")
    domain, path = _split_domain(name)
    if not valid_domain(domain):
        raise InvalidArgument(f"invalid reference format: bad registry host {domain!r}")
    if not _PATH_RE.match(path):
        hint = " (repository names must be lowercase)" if path.lower() != path else ""
        raise InvalidArgument(f"invalid reference format: bad repository name {path!r}{hint}")
    if len(f"{domain}/{path}") > _MAX_NAME:
        raise InvalidArgument("invalid reference format: repository name too long")
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def valid_domain(domain: str) -> bool:
    """A registry host as references name it: "registry.example:5000", "[::1]:5000"."""
    m = _DOMAIN_RE.match(domain)
    return m is not None and len(domain) <= _MAX_NAME and int(m.group(1) or 0) <= 65535


def check_domain(domain: str, what: str = "registry host") -> str:
    """``domain`` if valid_domain, else InvalidArgument."""
    if not valid_domain(domain):
        raise InvalidArgument(f"invalid {what} {domain!r}: want a host name or address, "
                              "with an optional :port")
    return domain


def is_loopback(domain: str) -> bool:
    """True for registries on this machine (reached over plain HTTP by default)."""
    host = domain.rsplit(":", 1)[0] if not domain.startswith("[") else domain.split("]")[0][1:]
    return host == "localhost" or host.startswith("127.") or host == "::1"
