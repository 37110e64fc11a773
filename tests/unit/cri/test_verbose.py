"""The verbose info, current resources and CPU rates muelle-cri computes from engine.v1
answers (no engine needed: the answers are built here)."""

from __future__ import annotations

import hashlib
import json

from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.cri import stats, verbose
from services.cri.records import HANDLER, Record


def _detail(spec: object, pid: int = 42, status: str = "running") -> engine_pb2.ContainerDetail:
    return engine_pb2.ContainerDetail(
        id="c1", image="busybox", runtime="muelle-runtime", runtime_spec=json.dumps(spec),
        state=engine_pb2.ContainerState(status=status, running=status == "running", pid=pid))


def _record(kind: str) -> Record:
    return Record("c1", kind, "s1", "running", 0, {HANDLER: "runc"}, "sha256:i")


def test_resources_are_the_specs_linux_resources() -> None:
    spec = {"process": {"oomScoreAdj": 500}, "linux": {"resources": {
        "cpu": {"shares": 256, "quota": 20000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "memory": {"limit": 1 << 26, "swap": 1 << 27},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}}}
    res = verbose.resources(_detail(spec))
    assert res is not None
    assert res.linux == api_pb2.LinuxContainerResources(
        cpu_shares=256, cpu_quota=20000, cpu_period=100000, cpuset_cpus="0-1",
        cpuset_mems="0", memory_limit_in_bytes=1 << 26, memory_swap_limit_in_bytes=1 << 27,
        oom_score_adj=500, hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB")])


def test_no_or_bad_spec_gives_no_resources_and_a_null_runtime_spec() -> None:
    assert verbose.resources(engine_pb2.ContainerDetail()) is None
    broken = engine_pb2.ContainerDetail(runtime_spec="{not json")
    assert verbose.resources(broken) is None
    config = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="app"))
    info = json.loads(verbose.container_info(_record("container"), broken, config)["info"])
    assert info["runtimeSpec"] is None and info["config"]["metadata"]["name"] == "app"


def test_sandbox_info_has_containerds_keys() -> None:
    config = api_pb2.PodSandboxConfig(hostname="h")
    info = json.loads(verbose.sandbox_info(_record("sandbox"), _detail({"hostname": "h"},
                                                                       status="exited"),
                                           config)["info"])
    assert info["processStatus"] == "stopped" and info["netNamespaceClosed"]
    assert (info["pid"], info["runtimeHandler"], info["image"]) == (42, "runc", "busybox")
    assert info["runtimeSpec"] == {"hostname": "h"} and info["config"] == {"hostname": "h"}


def test_chain_id_of_layers() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert verbose.chain_id([]) == ""
    assert verbose.chain_id([a]) == a
    assert verbose.chain_id([a, b]) == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()


def test_usage_nano_cores_is_the_rate_between_two_readings() -> None:
    rates = stats.CpuRates()
    assert rates.nano_cores("c1", 1_000_000_000, 5_000_000_000) == 0  # the first: 0
    # Half a core: 0.5 s of CPU over 1 s.
    assert rates.nano_cores("c1", 2_000_000_000, 5_500_000_000) == 500_000_000
    assert rates.nano_cores("c1", 2_000_000_000, 5_500_000_000) == 500_000_000  # same reading
    assert rates.nano_cores("c1", 3_000_000_000, 1_000) == 0  # restarted: counting again
    rates.forget_except({"c2": types_pb2.ContainerStats(id="c2")})  # c1 no longer runs
    assert rates.nano_cores("c1", 4_000_000_000, 2_000) == 0
