"""Reference counting and GC through the CLI: shared layers, rmi, image prune, system df
and system check, on a whole engine and a real registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.engine import Engine
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
