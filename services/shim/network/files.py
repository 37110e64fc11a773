"""/etc/hosts, /etc/hostname and /etc/resolv.conf of a container, like Docker's.

They live in the container dir and are bind-mounted over the rootfs's. Peers on a user
network are added to each other's hosts file in place (rewriting the inode that the
container has mounted, never replacing it).
"""

from __future__ import annotations

import re
from pathlib import Path

DEFAULT_HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""
# Docker's fallback when the host only has loopback resolvers.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
_LOOPBACK_NS = re.compile(r"^\s*nameserver\s+(127\.\S*|::1)\s*$")


def resolv_conf(host_text: str) -> str:
    """The host's resolv.conf without loopback nameservers (unreachable from a netns)."""
    lines = [line for line in host_text.splitlines() if not _LOOPBACK_NS.match(line)]
    if not any(line.strip().startswith("nameserver") for line in lines):
        lines += [f"nameserver {ns}" for ns in FALLBACK_NAMESERVERS]
    return "\n".join(lines) + "\n"


def _entries(text: str, keyword: str) -> list[str]:
    """The words after each ``keyword`` line of a resolv.conf ("domain" counts as search)."""
    out: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words and (words[0] == keyword or (keyword == "search" and words[0] == "domain")):
            out += words[1:]
    return out


def with_dns(text: str, servers: list[str], search: list[str], options: list[str]) -> str:
    """The resolv.conf Docker writes when any of --dns, --dns-search, --dns-option is given
    (libnetwork's resolvconf.Build): search, nameservers, options, each the given list or
    else ``text``'s, nothing else of ``text`` kept; a search list of "." means none."""
    search = search or _entries(text, "search")
    servers = servers or _entries(text, "nameserver")
    options = options or _entries(text, "options")
    out = ""
    if search and " ".join(search).strip() != ".":
        out += "search " + " ".join(search) + "\n"
    out += "".join(f"nameserver {s}\n" for s in servers)
    if options:
        out += "options " + " ".join(options) + "\n"
    return out


def hosts(own: list[tuple[str, list[str]]], peers: list[tuple[str, list[str]]],
          extra: list[tuple[str, str]] | None = None) -> str:
    """Docker's defaults, the --add-host (IP, name)s, this container's addresses, then its
    peers' (IP, names): libnetwork writes the extra records with the file and appends the
    container's own once it has an address."""
    out = DEFAULT_HOSTS
    for ip, name in extra or []:
        out += f"{ip}\t{name}\n"
    for ip, names in own + peers:
        out += f"{ip}\t{' '.join(names)}\n"
    return out


def write_in_place(path: Path, text: str) -> None:
    """Rewrite ``path``'s content keeping its inode (a bind mount of it stays valid)."""
    with open(path, "a+") as f:
        f.seek(0)
        if f.read() == text:
            return
        f.seek(0)
        f.truncate()
        f.write(text)


def host_resolv() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""
