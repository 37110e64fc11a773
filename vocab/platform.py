"""The host's OCI platform names (GOARCH style), shared by every component."""

from __future__ import annotations

# The PATH of a Linux container whose image sets none (Docker's system.DefaultPathEnv).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
    # platform imported here: it costs ~6 ms, and the runtime's create only wants
    # DEFAULT_PATH from this module
    import platform as stdplatform

    name = (machine or stdplatform.machine()).lower()
    return _MACHINE.get(name, (name, ""))


# The variant an architecture means when it names none: "arm64" is "arm64/v8".
_DEFAULT_VARIANT = {"amd64": "v1", "arm64": "v8", "arm": "v7"}


def parse(text: str) -> tuple[str, str, str]:
    """(os, architecture, variant) of docker's ``--platform`` "os[/arch[/variant]]", e.g.
    "linux/arm64/v8"; ValueError (Docker's wording) when malformed. A bare os means the
    host's architecture."""
    parts = text.strip().lower().split("/")
    if len(parts) > 3 or not all(p and p.replace("_", "").replace("-", "").isalnum()
                                 for p in parts):
        raise ValueError(f'"{text}": unknown operating system or architecture')
    if len(parts) == 1:
        return (parts[0], *host_arch())
    arch = _MACHINE.get(parts[1], (parts[1], ""))[0]  # "aarch64" is "arm64"
    return parts[0], arch, parts[2] if len(parts) == 3 else ""


def same(a: tuple[str, str, str], b: tuple[str, str, str]) -> bool:
    """Whether two (os, architecture, variant) name one platform: "x86_64" is "amd64",
    "arm64" is "arm64/v8"; an unknown os ("") matches linux, as old image configs have."""
    def canonical(p: tuple[str, str, str]) -> tuple[str, str, str]:
        os_name, arch, variant = (x.lower() for x in p)
        arch = _MACHINE.get(arch, (arch, ""))[0]
        return os_name or "linux", arch, variant or _DEFAULT_VARIANT.get(arch, "")
    return canonical(a) == canonical(b)


def name(os_name: str, arch: str, variant: str = "") -> str:
    """"linux/arm64/v8", as Docker prints a platform."""
    return "/".join(p for p in (os_name or "linux", arch, variant) if p)
