"""meta.py: the typed meta.json reads back what every shim wrote, key for key."""

from __future__ import annotations

import json
from pathlib import Path

from services.shim.meta import Meta
from services.shim.store import ContainerDir

CID = "a" * 64
# meta.json as the shim before the typed meta wrote it (a -i -t container with userns).
OLD = {
    "runtime": "muelle", "created_at": "2026-12-06T10:00:00.000000000Z",
    "cgroups_path": "/muelle/" + CID, "own_pid_ns": True, "log_max_size": 0,
    "log_max_files": 1, "restart_policy": "on-failure:3",
    "rootfs": [{"type": "overlay", "source": "overlay", "target": "",
                "options": ["lowerdir=/l"]}],
    "volumes": [{"name": "v", "destination": "/data"}],
    "userns": [[[0, 100000, 65536]], [[0, 100000, 65536]]],
    "stdin": {"once": True}, "terminal": True, "restart_count": 2,
}


def test_an_old_meta_reads_back_and_writes_the_same_json(tmp_path: Path) -> None:
    cdir = ContainerDir(tmp_path / CID)
    cdir.path.mkdir()
    cdir.meta.write_text(json.dumps(OLD))
    meta = Meta.read(cdir)
    assert meta is not None
    assert meta.restart_policy == "on-failure:3" and meta.restart_count == 2
    assert meta.maps() == (((0, 100000, 65536),), ((0, 100000, 65536),))
    meta.write(cdir)
    assert json.loads(cdir.meta.read_text()) == OLD


def test_unknown_keys_are_kept_and_false_flags_left_out(tmp_path: Path) -> None:
    meta = Meta.from_json({**OLD, "from_a_newer_shim": 7, "manually_stopped": False})
    out = meta.to_json()
    assert out["from_a_newer_shim"] == 7
    assert "manually_stopped" not in out and "creating" not in out
    meta.creating = True
    assert meta.to_json()["creating"] is True


def test_no_meta_is_none(tmp_path: Path) -> None:
    assert Meta.read(ContainerDir(tmp_path / CID)) is None
    assert Meta().maps() is None
