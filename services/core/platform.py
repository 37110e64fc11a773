"""The host's OCI platform names (GOARCH style), shared by every component."""

from __future__ import annotations

import platform as stdplatform

# uname machine -> (OCI architecture, variant)
_MACHINE = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "i386": ("386", ""),
    "i686": ("386", ""),
}


def host_arch(machine: str | None = None) -> tuple[str, str]:
    """(architecture, variant) of this machine, e.g. ("amd64", "") or ("arm64", "v8")."""
    name = (machine or stdplatform.machine()).lower()
    return _MACHINE.get(name, (name, ""))
