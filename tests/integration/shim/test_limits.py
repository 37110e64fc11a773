"""cgroup limits through each runtime: OOM kill with -m 32m, a pids limit."""

from __future__ import annotations

import pytest
from muelle.shim.v1 import shim_pb2 as pb

from tests.integration.shim.conftest import RUNTIMES, ShimProcess

pytestmark = pytest.mark.root

ALLOCATE_100MB = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo ${#x}'


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_memory_limit_oom_kills(shim: ShimProcess, runtime: str) -> None:
    _cid, status = shim.run(["sh", "-c", ALLOCATE_100MB], runtime=runtime,
                            resources=pb.Resources(memory_limit=32 * 1024 * 1024))
    assert status.exit_code == 137, status
    assert status.oom_killed


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pids_limit_stops_fork_loop(shim: ShimProcess, runtime: str) -> None:
    script = "i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; echo spawned"
    cid, status = shim.run(["sh", "-c", script], runtime=runtime,
                           resources=pb.Resources(pids_limit=20))
    assert status.status == "stopped"
    err = shim.output(cid, "stderr")
    assert b"fork" in err or b"Resource temporarily unavailable" in err, err
