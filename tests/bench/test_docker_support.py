"""tests/support/docker.py: a private dockerd runs a container and leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.bench import procs
from tests.support.docker import DOCKERD, Dockerd
from tests.support.engine import mounts_under, processes_mentioning

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
]


@pytest.fixture(autouse=True)
def _dockerd_installed() -> None:
    # make setup installs docker.io: without it this is a broken set-up, not a skip.
    assert Path(DOCKERD).exists(), f"{DOCKERD} is missing: run make setup (docker.io)"


def test_private_dockerd_runs_and_cleans_up(busybox_ref: str) -> None:
    with Dockerd() as d:
        workdir, parent = d.dir, d.cgroup_parent
        assert d.pid() and d.containerd_pids()
        d.docker("pull", "-q", busybox_ref)
        out = d.docker("run", "--rm", busybox_ref, "sh", "-c", "echo hi; cat /proc/1/cgroup")
        assert out.stdout.startswith("hi\n")
        assert parent in out.stdout  # the container sits under this daemon's cgroup parent
        cid = d.docker("run", "-d", busybox_ref, "sleep", "100").stdout.strip()
        assert len(d.shim_pids()) == 1 and procs.in_cgroups(parent)
        assert "dockerd" in {procs.comm(p) for p in [d.pid() or 0]}
        assert cid  # removed by close()
    assert not workdir.exists()
    assert not processes_mentioning(str(workdir)) and not mounts_under(workdir)
    assert not procs.in_cgroups(parent)
    assert not any((Path("/sys/fs/cgroup") / h / parent).exists()
                   for h in ("memory", "pids", "cpu"))
