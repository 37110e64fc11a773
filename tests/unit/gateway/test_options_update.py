"""services/gateway/options.py: --cgroup-parent and `update`'s checks."""

from __future__ import annotations

import pytest
from muelle.engine.v1 import engine_pb2

from services.gateway import options
from vocab.errors import InvalidArgument


@pytest.mark.parametrize(("given", "want"), [
    ("", ""), ("kubepods/pod1", "/kubepods/pod1"), ("/kubepods//burstable/", "/kubepods/burstable"),
])
def test_cgroup_parent(given: str, want: str) -> None:
    assert options.cgroup_parent(given) == want


@pytest.mark.parametrize("bad", ["/a/../b", "system.slice:docker:x", "/a b", "/"])
def test_bad_cgroup_parent(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="cgroup parent"):
        options.cgroup_parent(bad)


def test_update_resources() -> None:
    res = options.update_resources(engine_pb2.UpdateContainerRequest(
        container="x", nano_cpus=500_000_000, memory=64 << 20))
    assert (res.cpu_quota, res.cpu_period, res.memory_limit) == (50_000, 100_000, 64 << 20)
    assert options.update_resources(engine_pb2.UpdateContainerRequest(
        container="x", cpu_quota=-1)).cpu_quota == -1


@pytest.mark.parametrize(("req", "message"), [
    (engine_pb2.UpdateContainerRequest(memory=1024), "6MB"),
    (engine_pb2.UpdateContainerRequest(nano_cpus=10**9, cpu_quota=5000), "Conflicting"),
    (engine_pb2.UpdateContainerRequest(cpu_period=10), "period"),
    (engine_pb2.UpdateContainerRequest(cpu_quota=10), "quota"),
    (engine_pb2.UpdateContainerRequest(cpuset_cpus="x-y"), "cpus"),
])
def test_bad_updates(req: engine_pb2.UpdateContainerRequest, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        options.update_resources(req)
