"""Images for the pull benchmark, built from this machine (never fetched) and cached in /tmp.

    random_layout(cache, layers=5, mib=40)  ~200 MB of incompressible files in 5 layers
    debian_layout(cache)                    a debootstrap minbase tree as one layer (opt-in)

Each layout is built once into ``cache`` and reused by later sessions: a ``.complete``
marker is written last, so an interrupted build is rebuilt, not reused.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.support.images import Entry, Layer, build_layout

CACHE = Path(os.environ.get("MUELLE_BENCH_CACHE") or "/tmp/muelle-bench-cache")
DEBIAN_SUITE = "bookworm"


def _cached(layout: Path, build: Callable[[Path], object]) -> Path:
    marker = layout / ".complete"
    if not marker.exists():
        tmp = layout.with_name(layout.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        (tmp / ".complete").write_text("")
        shutil.rmtree(layout, ignore_errors=True)
        tmp.rename(layout)
    return layout


def random_layout(cache: Path = CACHE, layers: int = 5, mib: int = 40, tag: str = "1") -> Path:
    """``layers`` gzip layers, each one file of ``mib`` MiB of seeded random bytes."""

    def build(path: Path) -> None:
        rng = random.Random(f"muelle-bench-{layers}x{mib}")  # same bytes, same digests
        stack = [Layer([Entry("data", "dir"),
                        Entry(f"data/blob{i}", data=rng.randbytes(mib * 2**20))])
                 for i in range(layers)]
        build_layout(path, stack, tag=tag, config={"Cmd": ["true"]})

    return _cached(cache / f"random-{layers}x{mib}MiB", build)


class RawLayer(Layer):
    """A layer whose tar stream was made elsewhere (here: by tar(1) from a rootfs tree)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__([])
        self.raw = raw

    def tar(self) -> bytes:
        return self.raw


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (debootstrap needs one)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for source in sources:
        try:
            lines = source.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and words[1].endswith("/debian"):
                return words[1]
            if line.startswith("deb ") and any(w.endswith("/debian") for w in words):
                return next(w for w in words if w.endswith("/debian"))
    return "http://deb.debian.org/debian"


def debian_layout(cache: Path = CACHE, tag: str = "1") -> Path:
    """A Debian minbase rootfs (debootstrap from the apt mirror) as a one-layer image."""

    def build(path: Path) -> None:
        if shutil.which("debootstrap") is None:
            subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                            "debootstrap"], check=True, capture_output=True, timeout=600)
        tree = cache / f"debian-{DEBIAN_SUITE}-tree"
        if not (tree / ".complete").exists():
            shutil.rmtree(tree, ignore_errors=True)
            subprocess.run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(tree),
                            debian_mirror()], check=True, capture_output=True, timeout=1800)
            (tree / ".complete").write_text("")
        raw = subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "--exclude=./.complete",
             "--exclude=./dev/*", "-C", str(tree), "-cf", "-", "."],
            check=True, capture_output=True, timeout=600).stdout
        build_layout(path, [RawLayer(raw)], tag=tag, config={"Cmd": ["bash"]})

    return _cached(cache / f"debian-{DEBIAN_SUITE}", build)
