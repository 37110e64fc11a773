"""`make up` / `make down` (deploy/muelle-{up,down}.sh) honour MUELLE_ROOT and MUELLE_RUN,
and the CLI finds the gateway at unix://$MUELLE_RUN/gateway.sock without --host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support.engine import sweep

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[3]


def test_up_status_down_with_env_dirs() -> None:
    base = Path(tempfile.mkdtemp(prefix="mu-up-", dir="/tmp"))
    parent = f"muelle-test-{uuid.uuid4().hex[:8]}"
    config = base / "muelle.toml"
    config.write_text(f'[shim]\ncgroup_parent = "{parent}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUELLE_")}
    env.update(MUELLE_ROOT=str(base / "root"), MUELLE_RUN=str(base / "run"),
               MUELLE_CONFIG=str(config), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    try:
        up = subprocess.run([str(REPO / "deploy/muelle-up.sh")], env=env, capture_output=True,
                            text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        for name in ("registry", "imagestore", "shim", "gateway"):
            assert (base / "run" / f"{name}.sock").exists()
            assert (base / "run" / f"{name}.pid").exists()
        version = subprocess.run(["muelle", "version"], env=env, capture_output=True,
                                 text=True, timeout=60)
        assert version.returncode == 0, version.stderr
        assert "shim:" in version.stdout and "(serving)" in version.stdout
        assert (base / "root" / "imagestore").is_dir()
    finally:
        down = subprocess.run([str(REPO / "deploy/muelle-down.sh")], env=env,
                              capture_output=True, text=True, timeout=120)
        leftovers = sweep(base, parent)
        shutil.rmtree(base, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert not list((base / "run").glob("*.pid")) if (base / "run").exists() else True
    assert leftovers == []
    after = subprocess.run(["muelle", "version"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert after.returncode != 0 and "Cannot connect" in after.stderr
