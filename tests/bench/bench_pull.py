"""4. Cold pull from the local registry: muelle vs ``docker pull`` vs ``skopeo copy ... oci:``.

Images: ~200 MB of incompressible data in 5 layers (always), and a Debian minbase rootfs
built with debootstrap (only with MUELLE_BENCH_DEBOOTSTRAP=1: it needs the Debian mirror
and a few minutes the first time; the tree is cached). MUELLE_BENCH_DOCKER_TOPDIR=1 gives
dockerd's overlay2 dir the top-directory flag muelle's snapshots have (imagestore/topdir.py),
for the ratio without a journal-less ext4's slow inode creation after a removal.
``random-slow-link`` pulls the random image through a proxy that caps each connection at
MUELLE_BENCH_LINK_MIBS MiB/s (default 8; tests/support/counting_proxy.py), like a registry
far away: what muelle's parallel Range requests for one large layer are for
(registry/ranges.py). Every round is cold: muelle pulls
into a fresh engine (started and removed outside the timing), docker removes the image
after each pull (dockerd 20.10 keeps no blob cache), skopeo copies into a fresh directory.
Then, still untimed and for every side alike, ``sync; echo 3 > /proc/sys/vm/drop_caches``
(issue 21's "cold": the registry's blobs and every program's files come from the disk);
MUELLE_BENCH_DROP_CACHES=0 leaves the page cache as it is, for comparison.
skopeo only stores the blobs while the engines also unpack them: it is the floor for
transfer + verification, not a like-for-like engine.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from services.imagestore.topdir import spread_children
from tests.bench import images
from tests.bench.harness import Contender, Settings, emit, run_rounds, timed
from tests.bench.sides import ENGINE_MODULES, MARKS, muelle_missing, require, run_quiet
from tests.support.counting_proxy import CountingProxy
from tests.support.engine import Engine
from tests.support.images import push_layout
from tests.support.registry import LocalRegistry

pytestmark = MARKS


def _layout(kind: str, settings: Settings) -> Path:
    if kind.startswith("debian"):
        if os.environ.get("MUELLE_BENCH_DEBOOTSTRAP") != "1":
            pytest.skip("set MUELLE_BENCH_DEBOOTSTRAP=1 to build and pull a Debian rootfs image")
        return images.debian_layout()
    # Smoke mode: the same shape, small enough to take seconds.
    return images.random_layout(layers=settings.scaled(5, 2), mib=settings.scaled(40, 4))


def _drop_caches() -> None:
    """Write back and drop the page cache, dentries and inodes, as a cold pull starts."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _then(setup: Callable[[], object] | None, drop: bool) -> Callable[[], None]:
    """``setup``, then (when ``drop``) the page cache dropped: the last untimed step."""

    def run() -> None:
        if setup is not None:
            setup()
        if drop:
            _drop_caches()

    return run


def _layout_bytes(layout: Path) -> int:
    return sum(p.stat().st_size for p in (layout / "blobs").rglob("*") if p.is_file())


def _layer_count(layout: Path) -> int:
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    return len(manifest["layers"])


class FreshEngine:
    """A new engine per round so that nothing is cached; start and close are untimed."""

    def __init__(self) -> None:
        self.engine: Engine | None = None

    def setup(self) -> None:
        self.engine = Engine()  # assigned first: teardown must close a half-started engine
        self.engine.start()

    def pull(self, ref: str) -> None:
        assert self.engine is not None
        self.engine.cli("pull", ref, timeout=600)

    def teardown(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None
            engine.close()


@pytest.mark.parametrize("kind", ["random", "debian", "random-slow-link"])
def test_cold_pull(kind: str, settings: Settings, registry: LocalRegistry,
                   request: pytest.FixtureRequest) -> None:
    layout = _layout(kind, settings)
    path = f"bench/{layout.name.lower()}:1"  # repositories are lowercase
    push_layout(layout, f"{registry.host}/{path}", tag="1")
    host = registry.host
    meta: dict[str, object] = {}
    if kind.endswith("slow-link"):
        rate = int(float(os.environ.get("MUELLE_BENCH_LINK_MIBS", "8")) * 2**20)
        proxy = CountingProxy(registry.host, rate=rate).start()
        request.addfinalizer(proxy.close)
        host, meta["link_bytes_per_s_per_connection"] = proxy.host, rate
    ref = f"{host}/{path}"
    drop = os.environ.get("MUELLE_BENCH_DROP_CACHES", "1") != "0"
    contenders = []
    if settings.wants("muelle"):
        reason = muelle_missing(*ENGINE_MODULES)
        if reason:
            pytest.skip(reason)
        fresh = FreshEngine()
        request.addfinalizer(fresh.teardown)  # when a round is interrupted
        contenders.append(Contender("muelle", timed(lambda: fresh.pull(ref),
                                                    _then(fresh.setup, drop),
                                                    fresh.teardown)))
    if settings.wants("docker"):
        dockerd = request.getfixturevalue("dockerd")
        if os.environ.get("MUELLE_BENCH_DOCKER_TOPDIR") == "1":
            # Docker's layer dirs spread over inode groups as muelle's snapshots are
            # (imagestore/topdir.py), to see the ratio without the journal-less ext4's
            # penalty for creating inodes right after a removal.
            overlay = Path(dockerd.data_root) / "overlay2"
            meta["docker_overlay2_topdir"] = overlay.is_dir() and spread_children(overlay)
        pull_argv, env = dockerd.argv("pull", "-q", ref), dockerd.env()
        rmi_argv = dockerd.argv("rmi", ref)
        contenders.append(Contender("docker", timed(
            lambda: run_quiet(pull_argv, timeout=600, env=env), _then(None, drop),
            teardown=lambda: run_quiet(rmi_argv, env=env))))
    if settings.wants("skopeo"):
        if shutil.which("skopeo") is None:
            pytest.skip("skopeo is not installed (apt-get install skopeo)")
        target: list[Path] = []

        def new_dir() -> None:
            target.append(Path(tempfile.mkdtemp(prefix="mu-skopeo-")))

        def copy() -> None:
            run_quiet(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                       f"docker://{ref}", f"oci:{target[-1]}:1"], timeout=600)

        def remove() -> None:
            while target:
                shutil.rmtree(target.pop(), ignore_errors=True)

        contenders.append(Contender("skopeo", timed(copy, _then(new_dir, drop), remove)))
    meta |= {"image": layout.name, "compressed_bytes": _layout_bytes(layout),
            "layers": _layer_count(layout), "muelle_round": "fresh engine per round",
            "docker_round": "rmi after each pull", "skopeo_round": "fresh oci: dir, no unpack",
             "dropped_caches": drop}
    result = run_rounds(f"pull-{kind}", require(contenders), pairs=settings.pairs,
                        warmup=settings.warmup, meta=meta)
    emit(result, settings)
