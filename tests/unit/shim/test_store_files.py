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
