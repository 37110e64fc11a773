"""The image config ("config" object) a Dockerfile's instructions change, in Docker's
JSON shape: Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes,
StopSignal, Healthcheck, OnBuild, Shell."""

from __future__ import annotations

import re
from typing import Any

from vocab.errors import InvalidArgument
from vocab.platform import DEFAULT_PATH

DEFAULT_SHELL = ["/bin/sh", "-c"]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}


def env_map(config: dict[str, Any]) -> dict[str, str]:
    out = {}
    for entry in config.get("Env") or []:
        key, _, value = str(entry).partition("=")
        out[key] = value
    return out


def set_env(config: dict[str, Any], key: str, value: str) -> None:
    """Replace ``key`` where it is, or append it (Docker keeps the order)."""
    env = list(config.get("Env") or [])
    for i, entry in enumerate(env):
        if str(entry).partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    config["Env"] = env


def default_path(config: dict[str, Any]) -> None:
    """A stage whose base sets no PATH gets the default one in its Env, as Docker's
    builder does at every FROM (scratch included)."""
    if "PATH" not in env_map(config):
        config["Env"] = [*(config.get("Env") or []), f"PATH={DEFAULT_PATH}"]


def shell(config: dict[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def ports(words: list[str]) -> list[str]:
    """EXPOSE words as "port/proto" keys; "8000-8002" is three."""
    out: list[str] = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"Invalid proto: {proto}")  # go-connections' words
        low, _, high = port.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise InvalidArgument(f"Invalid containerPort: {port}")
        first, last = int(low), int(high or low)
        if not 0 < first <= last <= 65535:
            raise InvalidArgument(f"Invalid containerPort: {port}")
        out.extend(f"{p}/{proto}" for p in range(first, last + 1))
    return out


def duration(text: str, flag: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    if text in ("0", ""):
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise InvalidArgument(f"invalid value for --{flag}: time: invalid duration \"{text}\"")
    return int(total)


SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7,
           "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
           "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
           "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26,
           "PROF": 27, "WINCH": 28, "IO": 29, "PWR": 30, "SYS": 31}


def check_signal(sig: str) -> None:
    name = sig.upper().removeprefix("SIG")
    if sig.isdigit() and 0 < int(sig) < 65:
        return
    if name in SIGNALS or re.fullmatch(r"RTMIN(\+\d+)?|RTMAX(-\d+)?", name):
        return
    raise InvalidArgument(f"Invalid signal: {sig}")
