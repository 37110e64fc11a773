"""write_json: atomic always, fsynced unless the caller says a host crash makes it moot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.shim.store import read_json, write_json


@pytest.mark.parametrize("durable, syncs", [(True, 1), (False, 0)])
def test_write_json_syncs_only_when_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            durable: bool, syncs: int) -> None:
    calls: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counted)
    path = tmp_path / "status.json"
    path.write_text('{"old": true}')
    write_json(path, {"exit_code": 3}, durable=durable)
    assert read_json(path) == {"exit_code": 3}
    assert len(calls) == syncs
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left


@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """No new file can get a block: creating the temp file fails with ENOSPC (writes
    into blocks a file has already are what a full disk still allows)."""
    import errno

    from services.core import modes
    real = modes.open_private

    def full(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if ".tmp" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(modes, "open_private", full)


@pytest.mark.usefixtures("disk_full")
def test_on_a_full_disk_the_file_is_rewritten_in_its_own_blocks(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text('{"runtime": "muelle", "created_at": "x"}')
    write_json(path, {"runtime": "muelle", "created_at": "x", "manually_stopped": True})
    assert read_json(path) == {"runtime": "muelle", "created_at": "x",
                               "manually_stopped": True}
    write_json(path, {"a": 1})  # shorter: padded with spaces, still JSON
    assert read_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


@pytest.mark.usefixtures("disk_full")
def test_on_a_full_disk_a_spare_becomes_the_file(tmp_path: Path) -> None:
    from services.shim.store import make_spare

    spare, path = tmp_path / "status.spare", tmp_path / "status.json"
    make_spare(spare)
    write_json(path, {"exit_code": 3}, spare=spare)
    assert read_json(path) == {"exit_code": 3} and not spare.exists()


@pytest.mark.usefixtures("disk_full")
def test_on_a_full_disk_what_does_not_fit_is_resource_exhausted(tmp_path: Path) -> None:
    from vocab.errors import ResourceExhausted

    path = tmp_path / "network.json"
    with pytest.raises(ResourceExhausted, match="could not write the network state"):
        write_json(path, {"big": "x" * 10000}, what="the network state")
    assert list(tmp_path.iterdir()) == []
