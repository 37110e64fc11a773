from __future__ import annotations

import pytest

from services.registry import platforms
from services.registry.descriptors import Descriptor, Platform
from services.registry.manifests import OCI_INDEX, OCI_MANIFEST
from vocab.errors import NotFound


def entry(arch: str, variant: str = "", os: str = "linux", n: int = 0,
          media_type: str = OCI_MANIFEST, **annotations: str) -> Descriptor:
    digest = "sha256:" + f"{arch}{variant}{n}".encode().hex().ljust(64, "0")[:64]
    return Descriptor(media_type, digest, 10, annotations=annotations,
                      platform=Platform(os, arch, variant))


@pytest.mark.parametrize(("machine", "want"), [
    ("x86_64", Platform("linux", "amd64")),
    ("aarch64", Platform("linux", "arm64", "v8")),
    ("armv7l", Platform("linux", "arm", "v7")),
])
def test_host_platform(machine: str, want: Platform) -> None:
    assert platforms.host(machine) == want


@pytest.mark.parametrize(("given", "arch", "variant"), [
    (Platform("linux", "x86_64"), "amd64", ""),
    (Platform("linux", "amd64", "v1"), "amd64", ""),
    (Platform("linux", "aarch64", "v8"), "arm64", ""),
    (Platform("linux", "arm64", "8"), "arm64", ""),
    (Platform("linux", "armhf"), "arm", "v7"),
    (Platform("linux", "armel"), "arm", "v6"),
    (Platform("linux", "arm"), "arm", "v7"),
    (Platform("linux", "arm", "6"), "arm", "v6"),
    (Platform("linux", "i386"), "386", ""),
    (Platform("Linux", "AMD64"), "amd64", ""),
])
def test_normalize(given: Platform, arch: str, variant: str) -> None:
    got = platforms.normalize(given)
    assert (got.os, got.architecture, got.variant) == ("linux", arch, variant)


def test_exact_match_wins_and_first_of_ties() -> None:
    entries = [entry("arm64", "v8"), entry("amd64", n=1), entry("amd64", n=2)]
    assert platforms.select(entries, Platform("linux", "amd64")) is entries[1]


def test_arm64_host_matches_v8_entry() -> None:
    entries = [entry("amd64"), entry("arm64", "v8")]
    assert platforms.select(entries, platforms.host("aarch64")) is entries[1]


def test_amd64_falls_back_to_386() -> None:
    entries = [entry("arm64"), entry("386")]
    assert platforms.select(entries, Platform("linux", "amd64")) is entries[1]


def test_arm64_falls_back_to_best_arm_variant() -> None:
    entries = [entry("arm", "v6"), entry("arm", "v7")]
    assert platforms.select(entries, Platform("linux", "arm64")) is entries[1]


def test_arm_v7_never_picks_v8() -> None:
    entries = [entry("arm", "v8"), entry("arm", "v6")]
    assert platforms.select(entries, Platform("linux", "arm", "v7")) is entries[1]


def test_strict_disables_fallback() -> None:
    with pytest.raises(NotFound):
        platforms.select([entry("386")], Platform("linux", "amd64"), strict=True)


def test_attestations_and_foreign_types_never_match() -> None:
    entries = [
        entry("unknown", os="unknown"),
        entry("amd64", n=1, **{"vnd.docker.reference.type": "attestation-manifest"}),
        entry("amd64", n=2, media_type="application/vnd.example.thing"),
        entry("amd64", n=3, media_type=OCI_INDEX),
    ]
    with pytest.raises(NotFound):
        platforms.select(entries, Platform("linux", "amd64"))


def test_no_match_lists_available_platforms() -> None:
    entries = [entry("arm64", "v8"), entry("s390x"), entry("unknown", os="unknown")]
    with pytest.raises(NotFound) as err:
        platforms.select(entries, Platform("linux", "amd64"))
    assert "linux/amd64" in err.value.message
    assert "linux/arm64/v8" in err.value.message and "linux/s390x" in err.value.message
    assert "unknown" not in err.value.message


def test_os_must_match_and_features_be_a_subset() -> None:
    windows = entry("amd64", os="windows")
    featured = Descriptor(OCI_MANIFEST, "sha256:" + "1" * 64, 1,
                          platform=Platform("linux", "amd64", os_features=("sse9",)))
    with pytest.raises(NotFound):
        platforms.select([windows, featured], Platform("linux", "amd64"))


def test_entry_without_platform_is_a_last_resort() -> None:
    bare = Descriptor(OCI_MANIFEST, "sha256:" + "2" * 64, 1)
    amd = entry("amd64")
    assert platforms.select([bare, amd], Platform("linux", "amd64")) is amd
    assert platforms.select([bare], Platform("linux", "amd64")) is bare
