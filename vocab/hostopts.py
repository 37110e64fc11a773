"""Docker's text forms of --ulimit, --device and --add-host, and the checks of their parts.

The CLI parses the text; the gateway checks the parts whatever client sent them (the
Docker API's JSON arrives already split). Both raise ValueError with docker's wording;
each edge names its flag and maps it to its own error.
"""

from __future__ import annotations

import ipaddress
import posixpath

# go-units' ulimitNameMapping: RLIMIT_<NAME.upper()> of each.
ULIMIT_NAMES = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
UNLIMITED = -1  # Docker's spelling of RLIM_INFINITY
HOST_GATEWAY = "host-gateway"  # --add-host name:host-gateway: the default bridge's gateway
MIN_OOM_SCORE_ADJ, MAX_OOM_SCORE_ADJ = -1000, 1000


def _int64(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def parse_ulimit(text: str) -> tuple[str, int, int]:
    """"nofile=1024[:2048]" -> (name, soft, hard); hard is soft when not given
    (go-units ParseUlimit)."""
    name, sep, values = text.partition("=")
    if not sep:
        raise ValueError(f"invalid ulimit argument: {text}")
    parts = values.split(":")
    if len(parts) > 2:
        raise ValueError(f"too many limit value arguments - {values}, can only have up to "
                         "two, `soft[:hard]`")
    soft = _int64(parts[0])
    hard = _int64(parts[1]) if len(parts) == 2 else soft
    check_ulimit(name, soft, hard)
    return name, soft, hard


def check_ulimit(name: str, soft: int, hard: int) -> None:
    if name not in ULIMIT_NAMES:
        raise ValueError(f"invalid ulimit type: {name}")
    for value in (soft, hard):
        if value < UNLIMITED:
            raise ValueError(f"invalid ulimit value {value}: at least -1 (unlimited)")
    if hard != UNLIMITED and (soft == UNLIMITED or soft > hard):
        raise ValueError("ulimit soft limit must be less than or equal to hard limit: "
                         f"{soft} > {hard}")


def valid_device_mode(mode: str) -> bool:
    """Some of r, w, m, each at most once (docker's validDeviceMode)."""
    return bool(mode) and set(mode) <= set("rwm") and len(set(mode)) == len(mode)


def parse_device(text: str) -> tuple[str, str, str]:
    """"host[:container][:rwm]" -> (host path, container path, permissions), as the
    docker CLI's validateDevice and parseLinuxDevice read it."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise ValueError(f"bad format for path: {text}")
    host, container, mode = parts[0], "", "rwm"
    if len(parts) == 3:
        container, mode = parts[1], parts[2]
        if not valid_device_mode(mode):
            raise ValueError(f"bad mode specified: {mode}")
    elif len(parts) == 2:
        if valid_device_mode(parts[1]):
            mode = parts[1]
        else:
            container = parts[1]
    container = container or host
    check_device(host, container, mode)
    return host, container, mode


def check_device(host: str, container: str, mode: str) -> None:
    if not host:
        raise ValueError("a host path is required")
    if not posixpath.isabs(container or host):
        raise ValueError(f"{container or host} is not an absolute path")
    if mode and not valid_device_mode(mode):
        raise ValueError(f"bad mode specified: {mode}")


def parse_extra_host(text: str) -> tuple[str, str]:
    """"name:ip" -> (name, ip); the IP may be IPv6 (only the first ":" splits) or
    host-gateway (docker's ValidateExtraHost)."""
    name, sep, ip = text.partition(":")
    if not sep or not name:
        raise ValueError(f'bad format for add-host: "{text}"')
    ip = ip.strip()
    if ip != HOST_GATEWAY:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError(f'invalid IP address in add-host: "{ip}"') from None
    if any(c.isspace() for c in name):
        raise ValueError(f'bad format for add-host: "{text}"')
    return name, ip


def check_oom_score_adj(value: int) -> None:
    if not MIN_OOM_SCORE_ADJ <= value <= MAX_OOM_SCORE_ADJ:
        raise ValueError(f"Invalid value {value}, range for oom score adj is "
                         f"[{MIN_OOM_SCORE_ADJ}, {MAX_OOM_SCORE_ADJ}]")


def parse_device_cgroup_rule(text: str) -> tuple[str, int | None, int | None, str]:
    """--device-cgroup-rule "c 1:3 rwm" -> (type, major, minor, access); a * number is
    None (any). The docker CLI's pattern: a|b|c, numbers or *, 1-3 of r, w, m."""
    parts = text.split(" ")
    if len(parts) == 3 and parts[0] in ("a", "b", "c") and parts[1].count(":") == 1:
        major, minor = parts[1].split(":")
        access = parts[2]
        if (all(n == "*" or (n.isascii() and n.isdigit()) for n in (major, minor))
                and 1 <= len(access) <= 3 and set(access) <= set("rwm")):
            return (parts[0], None if major == "*" else int(major),
                    None if minor == "*" else int(minor), access)
    raise ValueError(f"invalid device cgroup format '{text}'")
