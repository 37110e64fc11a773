"""Platform normalisation, the host platform, and selection from an index (SPECS §4).

Selection follows containerd's ``platforms.Only``: every host platform has an ordered
vector of platforms it can run (amd64 -> 386, arm64 -> arm/v8..v5, arm/v7 -> v6, v5);
the index entry with the best rank wins, ties go to the first entry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.registry.descriptors import Descriptor, Platform
from services.registry.manifests import MANIFEST_TYPES
from vocab.errors import NotFound
from vocab.platform import host_arch

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"



def normalize(p: Platform) -> Platform:
    """Canonical form: lowercase, GOARCH names, default variants dropped or filled."""
    os_name = p.os.lower()
    arch, variant = p.architecture.lower(), p.variant.lower()
    if arch == "i386":
        arch = "386"
    elif arch in ("x86_64", "x86-64", "amd64"):
        arch = "amd64"
        if variant == "v1":
            variant = ""
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif re.fullmatch(r"\d+(\.\d+)?", variant):
            variant = "v" + variant
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    elif arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return Platform(os_name, arch, variant, p.os_version, p.os_features)


def host(machine: str | None = None) -> Platform:
    """The platform this process runs on (linux only, as muelle runs Linux containers)."""
    arch, variant = host_arch(machine)
    return Platform("linux", arch, variant)


def _vector(p: Platform) -> list[tuple[str, str]]:
    """(arch, variant) pairs ``p`` can run, best first (containerd compare.go)."""
    p = normalize(p)
    arch, variant = p.architecture, p.variant
    out: list[tuple[str, str]] = [(arch, variant)]
    if arch == "amd64":
        level = int(variant[1:]) if re.fullmatch(r"v\d+", variant) else 1
        out += [("amd64", f"v{n}") for n in range(level - 1, 1, -1)]
        if variant:
            out.append(("amd64", ""))
        out.append(("386", ""))
    elif arch == "arm64":
        minor = re.fullmatch(r"v8\.(\d+)", variant)
        if minor:
            out += [("arm64", f"v8.{n}") for n in range(int(minor.group(1)) - 1, 0, -1)]
            out.append(("arm64", ""))
        if variant == "" or minor:
            out += [("arm", v) for v in ("v8", "v7", "v6", "v5")]
    elif arch == "arm":
        level = int(variant[1:]) if re.fullmatch(r"v\d+", variant) else 7
        out += [("arm", f"v{n}") for n in range(level - 1, 4, -1)]
    return out


def _rank(candidate: Platform, want: Platform, vector: list[tuple[str, str]]) -> int | None:
    cand = normalize(candidate)
    if cand.os != want.os:
        return None
    if not set(cand.os_features) <= set(want.os_features):
        return None
    try:
        return vector.index((cand.architecture, cand.variant))
    except ValueError:
        return None


def select(entries: Sequence[Descriptor], want: Platform, strict: bool = False) -> Descriptor:
    """The index entry to pull for ``want``; NotFound naming the platforms on offer."""
    want = normalize(want)
    vector = _vector(want)
    if strict:
        vector = vector[:1]
    best: tuple[int, Descriptor] | None = None
    for entry in entries:
        if entry.media_type and entry.media_type not in MANIFEST_TYPES:
            continue  # unknown types and nested indexes are skipped, never an error
        if entry.annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest":
            continue
        # An entry without a platform runs anywhere, but any explicit match beats it.
        rank = len(vector) if entry.platform is None else _rank(entry.platform, want, vector)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, entry)
    if best is None:
        available = sorted({str(e.platform) for e in entries if e.platform is not None
                            and e.platform.os != "unknown"})
        offered = ", ".join(available) if available else "none"
        raise NotFound(f"no matching manifest for {want} in the manifest list entries "
                       f"(available: {offered})")
    return best[1]
