"""Many containers at once: every one runs, and nothing is left behind."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.engine import CLI, Engine, cgroups_under, mounts_under

pytestmark = pytest.mark.root


@pytest.mark.parametrize("runtime", ["muelle", "runc"])
def test_parallel_run_rm(engine: Engine, image: str, runtime: str) -> None:
    mounts_before = mounts_under(engine.dir)

    def run(i: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, "run", "--rm", "--runtime", runtime, image,
                               "sh", "-c", f"echo run-{i}"],
                              env=engine.env, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(run, range(20)))
    for i, proc in enumerate(results):
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"run-{i}"
    assert engine.cli("ps", "-aq").stdout.strip() == ""
    assert mounts_under(engine.dir) == mounts_before
    for parent in cgroups_under(engine.cgroup_parent):
        assert [p for p in parent.iterdir() if p.is_dir()] == [], parent
