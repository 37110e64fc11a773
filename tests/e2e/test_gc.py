"""Reference counting and GC through the CLI: shared layers, rmi, image prune, system df
and system check, on a whole engine and a real registry."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from tests.support.counting_proxy import CountingProxy
from tests.support.engine import CLI, Engine
from tests.support.images import Entry, Layer, build_layout, busybox_layer, push_layout
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def app_ref(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image on the same base layer as the busybox test image, plus one layer."""
    layout = tmp_path_factory.mktemp("layouts") / "app"
    build_layout(layout, [busybox_layer(), Layer([Entry("etc/app", data=b"app\n")])],
                 tag="1")
    ref = f"{registry.host}/demo/app:1"
    push_layout(layout, ref, tag="1")
    return ref


LAYERED = "demo/layered:1"


@pytest.fixture(scope="module")
def layered(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Five layers: the busybox test image's base plus four of 1 MiB that do not compress
    (a pull of it stays mid-download long enough to be held there)."""
    layout = tmp_path_factory.mktemp("layouts") / "layered"
    rng = random.Random(24)
    build_layout(layout, [busybox_layer()] + [
        Layer([Entry(f"data/{i}", data=rng.randbytes(1 << 20))]) for i in range(4)], tag="1")
    push_layout(layout, f"{registry.host}/{LAYERED}", tag="1")
    return LAYERED


def _df(engine: Engine) -> dict[str, list[str]]:
    lines = engine.cli("system", "df").stdout.splitlines()[1:]
    return {line.split()[0]: line.split()[1:] for line in lines}


def test_shared_layers_rmi_prune_df(fresh_engine: Engine, busybox_ref: str,
                                    app_ref: str) -> None:
    eng = fresh_engine
    eng.cli("pull", busybox_ref)
    out = eng.cli("pull", app_ref).stdout
    assert "Already exists" in out  # the shared base layer is not fetched again
    snapshots = eng.root / "imagestore/snapshots"
    assert len(list(snapshots.iterdir())) == 2  # base once + app's top layer
    df = _df(eng)
    assert df["Images"][:2] == ["2", "0"] and df["Containers"][:2] == ["0", "0"]

    cid = eng.cli("create", app_ref, "true").stdout.strip()
    refused = eng.cli("rmi", app_ref, check=False)
    assert refused.returncode == 1 and "is using its referenced image" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    df = _df(eng)
    assert df["Images"][:2] == ["2", "1"] and df["Containers"][:2] == ["1", "0"]
    verbose = eng.cli("system", "df", "-v").stdout
    assert "demo/app" in verbose and cid[:12] in verbose

    # Nothing dangling yet; -a removes busybox (no container) and keeps the shared base.
    assert "Total reclaimed space: 0B" in eng.cli("image", "prune", "-f").stdout
    pruned = eng.cli("image", "prune", "-a", "-f").stdout
    assert "untagged: " + busybox_ref in pruned
    assert len(list(snapshots.iterdir())) == 2
    assert "demo/busybox" not in eng.cli("images").stdout
    assert "no problems found" in eng.cli("system", "check").stdout

    eng.cli("rm", cid)
    removed = eng.cli("rmi", app_ref).stdout
    assert removed.count("Deleted: ") == 3  # the image and its two layers
    assert list(snapshots.iterdir()) == []
    assert [p for p in (eng.root / "imagestore/blobs").rglob("*") if p.is_file()] == []
    assert list((eng.root / "imagestore/containers").iterdir()) == []
    assert eng.cli("images", "-q").stdout == ""
    assert "checked 0 blobs" in eng.cli("system", "check").stdout


def test_system_check_reports_a_corrupt_blob(fresh_engine: Engine, busybox_ref: str) -> None:
    eng = fresh_engine
    eng.cli("pull", busybox_ref)
    assert "no problems found" in eng.cli("system", "check").stdout
    blobs = eng.root / "imagestore/blobs/sha256"
    victim: Path = max(blobs.iterdir(), key=lambda p: p.stat().st_size)  # the layer
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0x40
    victim.write_bytes(bytes(data))
    proc = eng.cli("system", "check", check=False)
    assert proc.returncode == 1
    assert f"blob sha256:{victim.name}: content has digest sha256:" in proc.stdout
    assert "1 problem(s) found" in proc.stderr and "Traceback" not in proc.stderr


def test_prune_during_a_pull_spares_its_content(fresh_engine: Engine, busybox_ref: str,
                                                registry: LocalRegistry, layered: str) -> None:
    """`image prune -a -f` while a pull is held mid-download: the pull reuses the base
    layer of busybox (which prune deletes, with no container on it) and has fetched part of
    its own; its lease keeps both, and it completes."""
    eng = fresh_engine
    eng.cli("pull", busybox_ref)
    with CountingProxy(registry.host, hold_after=3 << 19) as proxy:  # 1.5 MiB in
        ref = f"{proxy.host}/{layered}"
        pull = subprocess.Popen([CLI, "pull", ref], env=eng.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proxy.held.wait(60), "the pull never reached the hold point"
            pruned = [eng.cli("image", "prune", "-a", "-f").stdout for _ in range(3)]
            proxy.release()
            out, err = pull.communicate(timeout=120)
        finally:
            if pull.poll() is None:
                pull.kill()
                pull.wait()
    assert "untagged: " + busybox_ref in pruned[0]  # busybox itself went
    assert pull.returncode == 0, f"{out}\n{err}\n{eng.logs()}"
    assert "Already exists" in out
    assert "no problems found" in eng.cli("system", "check").stdout
    assert eng.cli("run", "--rm", ref, "wc", "-c", "/data/3").stdout.split()[0] == str(1 << 20)
