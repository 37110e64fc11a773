"""The tests' private dockerd leaves the host's Docker alone.

dockerd started with ``--bridge=none`` deletes the host's ``docker0`` (moby's
removeDefaultBridgeInterface). The daemon runs here in a network namespace this test makes,
with a ``docker0`` of its own, so the host's interfaces are never at stake.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.docker import DOCKERD

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
]


@pytest.fixture(autouse=True)
def _dockerd_installed() -> None:
    # make setup installs docker.io: without it this is a broken set-up, not a skip.
    assert Path(DOCKERD).exists(), f"{DOCKERD} is missing: run make setup (docker.io)"

REPO = Path(__file__).resolve().parents[3]

# Runs inside `unshare --net`: a docker0 of the namespace's own, then a private dockerd
# started and stopped; prints whether docker0 is still there.
SCRIPT = """
import subprocess
from tests.support.docker import Dockerd
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "link", "add", "docker0", "type", "bridge"], check=True)
with Dockerd() as d:
    print("args", open(f"/proc/{d.pid()}/cmdline").read().replace("\\0", " "))
shown = subprocess.run(["ip", "-o", "link", "show", "docker0"], capture_output=True, text=True)
print("docker0", "kept" if shown.returncode == 0 else "deleted")
"""


def test_private_dockerd_keeps_docker0() -> None:
    proc = subprocess.run(["unshare", "--net", "--", sys.executable, "-c", SCRIPT],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--bridge=none" not in proc.stdout
    assert "docker0 kept" in proc.stdout, proc.stdout
