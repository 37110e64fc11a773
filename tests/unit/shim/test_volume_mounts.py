"""Volume, bind and tmpfs destinations resolve inside the rootfs (no mount is made here):
odd and even ``..`` counts and one-level ``..`` links from tests/support/escapes.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from muelle.shim.v1 import shim_pb2 as pb

from services.shim.volume_mounts import prepare
from services.shim.volumes import VolumeStore
from tests.support.escapes import ESCAPES, build


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("kind", ["tmpfs", "bind"])
def test_destination_stays_in_rootfs(tmp_path: Path, path: str, kind: str) -> None:
    layout = build(tmp_path)
    source = tmp_path / "src"
    source.mkdir()
    target = "/" + path.lstrip("/") + "/mnt"  # targets are absolute
    m = pb.VolumeMount(type=kind, target=target, source=str(source) if kind == "bind" else "")
    resolved = prepare([m], str(layout.root), "c1", VolumeStore(tmp_path / "volumes"))
    assert [o["destination"] for o in resolved.oci] == ["/host/mnt"]
    assert (layout.root / "host" / "mnt").is_dir()
    assert layout.untouched()
