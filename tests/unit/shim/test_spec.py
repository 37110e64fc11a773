"""spec.py: Docker's defaults in the generated OCI config."""

from __future__ import annotations

from pathlib import Path

import pytest
from muelle.shim.v1 import shim_pb2 as pb
from muelle.types.v1 import types_pb2

from services.core import capabilities as core_caps
from services.shim import spec
from services.shim.users import User
from vocab.errors import InvalidArgument
from vocab.platform import DEFAULT_PATH

CID = "ab" * 32


def build(**kw: object) -> dict:
    cspec = pb.ContainerSpec(args=kw.pop("args", ["sh"]), **kw)  # type: ignore[arg-type]
    return spec.build_config(spec.BundleInput(
        id=CID, spec=cspec, user=User(uid=1000, gid=1000, additional_gids=[1000, 10],
                                      home="/home/app"),
        cgroup_parent="muelle-x",
        available_sysctls={"net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}))


def test_docker_defaults() -> None:
    cfg = build()
    assert cfg["ociVersion"] == "1.0.2"
    proc = cfg["process"]
    assert proc["capabilities"]["bounding"] == spec.DEFAULT_CAPS
    assert proc["capabilities"]["effective"] == proc["capabilities"]["permitted"] == \
        spec.DEFAULT_CAPS
    assert "inheritable" not in proc["capabilities"] and "ambient" not in proc["capabilities"]
    assert len(spec.DEFAULT_CAPS) == 14
    assert proc["noNewPrivileges"] is False
    assert "rlimits" not in proc
    assert proc["env"][:2] == [f"PATH={DEFAULT_PATH}", f"HOSTNAME={CID[:12]}"]
    assert "HOME=/home/app" in proc["env"]
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10]}
    assert proc["cwd"] == "/"
    assert cfg["hostname"] == CID[:12]
    assert cfg["root"] == {"path": "rootfs", "readonly": False}
    linux = cfg["linux"]
    assert {n["type"] for n in linux["namespaces"]} == {
        "pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert linux["cgroupsPath"] == f"/muelle-x/{CID}"
    assert "/proc/kcore" in linux["maskedPaths"] and "/proc/sys" in linux["readonlyPaths"]
    assert linux["sysctl"] == {"net.ipv4.ping_group_range": "0 2147483647",
                               "net.ipv4.ip_unprivileged_port_start": "0"}
    devices = linux["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}
    assert {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"} in devices
    mounts = {m["destination"]: m for m in cfg["mounts"]}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup",
                            "/dev/mqueue", "/dev/shm"]
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert f"size={64 * 1024 * 1024}" in mounts["/dev/shm"]["options"]


def test_env_replace_or_append_and_terminal() -> None:
    env = build(env=["PATH=/bin", "A=1", "HOME=/x"], terminal=True, hostname="h")[
        "process"]["env"]
    assert env == ["PATH=/bin", "HOSTNAME=h", "TERM=xterm", "A=1", "HOME=/x"]


@pytest.mark.parametrize(("add", "drop", "has", "lacks"), [
    (["NET_ADMIN"], [], ["CAP_NET_ADMIN", "CAP_CHOWN"], []),
    ([], ["CAP_CHOWN"], ["CAP_KILL"], ["CAP_CHOWN"]),
    (["CAP_SYS_ADMIN"], ["ALL"], ["CAP_SYS_ADMIN"], ["CAP_CHOWN"]),
    (["ALL"], ["CAP_SYS_ADMIN"], ["CAP_NET_ADMIN"], ["CAP_SYS_ADMIN"]),
])
def test_cap_add_drop(add: list[str], drop: list[str], has: list[str],
                      lacks: list[str]) -> None:
    caps = build(cap_add=add, cap_drop=drop)["process"]["capabilities"]["bounding"]
    assert all(c in caps for c in has)
    assert not any(c in caps for c in lacks)


def test_unknown_capability() -> None:
    with pytest.raises(InvalidArgument, match="CAP_NOPE"):
        build(cap_add=["CAP_NOPE"])


def test_privileged() -> None:
    cfg = build(privileged=True)
    assert cfg["process"]["capabilities"]["bounding"] == core_caps.available()
    assert "maskedPaths" not in cfg["linux"] and "readonlyPaths" not in cfg["linux"]
    assert cfg["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    mounts = {m["destination"]: m for m in cfg["mounts"]}
    assert "ro" not in mounts["/sys"]["options"]


def test_all_capabilities_are_those_the_host_can_give(tmp_path: Path) -> None:
    # A host (VM, container) without CAP_SYS_RESOURCE (bit 24) in its bounding set.
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapBnd:\t000001fffeffffff\n")
    host = core_caps.available(str(status))
    assert "CAP_SYS_RESOURCE" not in host and len(host) == len(spec.ALL_CAPS) - 1
    assert spec.capabilities([], [], True, available=host) == host
    assert spec.capabilities(["ALL"], ["CAP_KILL"], False, available=host) == \
        [c for c in host if c != "CAP_KILL"]
    assert core_caps.available(str(tmp_path / "missing")) == spec.ALL_CAPS


def test_no_new_privileges_and_readonly() -> None:
    cfg = build(no_new_privileges=True, readonly_rootfs=True)
    assert cfg["process"]["noNewPrivileges"] is True
    assert cfg["root"]["readonly"] is True
    mounts = {m["destination"]: m for m in cfg["mounts"]}
    assert "ro" in mounts["/sys"]["options"]
    assert "ro" not in mounts["/dev/shm"]["options"]


def test_resources_and_swap_default() -> None:
    mib = 1024 * 1024
    res = build(resources=pb.Resources(memory_limit=32 * mib, pids_limit=20, cpu_quota=50000,
                                       cpu_shares=512, cpuset_cpus="0", cpuset_mems="0"))[
        "linux"]["resources"]
    assert res["memory"] == {"limit": 32 * mib, "swap": 64 * mib}
    assert res["pids"] == {"limit": 20}
    assert res["cpu"] == {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0",
                          "mems": "0"}
    res = build(resources=pb.Resources(memory_limit=32 * mib, memory_swap=-1))["linux"][
        "resources"]
    assert res["memory"]["swap"] == -1
    assert "memory" not in build()["linux"]["resources"]


@pytest.mark.parametrize("res", [
    pb.Resources(memory_limit=1024),
    pb.Resources(memory_limit=64 * 1024 * 1024, memory_swap=32 * 1024 * 1024),
    pb.Resources(memory_swap=32 * 1024 * 1024),
])
def test_bad_resources(res: pb.Resources) -> None:
    with pytest.raises(InvalidArgument):
        build(resources=res)


def test_host_network_has_no_sysctls_or_netns() -> None:
    linux = build(network_mode="host")["linux"]
    assert "sysctl" not in linux
    assert "network" not in {n["type"] for n in linux["namespaces"]}


def test_no_command() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        build(args=[])


def test_ipc_pid_modes_sysctls_and_paths() -> None:
    cspec = pb.ContainerSpec(args=["sh"], ipc_mode="container:" + "cd" * 32, pid_mode="host",
                             sysctls={"kernel.shm_rmid_forced": "1"})
    cspec.masked_paths.values.append("/etc/group")
    cspec.readonly_paths.SetInParent()  # present and empty: nothing read-only
    linux = spec.build_config(spec.BundleInput(
        id=CID, spec=cspec, user=User(uid=0, gid=0), available_sysctls=set(),
        join_paths={"ipc": "/proc/42/ns/ipc"}))["linux"]
    spaces = {n["type"]: n.get("path", "") for n in linux["namespaces"]}
    assert spaces["ipc"] == "/proc/42/ns/ipc" and "pid" not in spaces
    assert linux["sysctl"] == {"kernel.shm_rmid_forced": "1"}
    assert linux["maskedPaths"] == ["/etc/group"] and linux["readonlyPaths"] == []


def test_uts_mode_joins_or_shares_and_sets_no_hostname() -> None:
    """A pod's hostname: the container joins its infra container's UTS namespace and
    sets none (runc refuses a hostname without a UTS namespace of its own)."""
    cspec = pb.ContainerSpec(args=["sh"], hostname="pod", uts_mode="container:" + "cd" * 32)
    config = spec.build_config(spec.BundleInput(
        id=CID, spec=cspec, user=User(uid=0, gid=0), available_sysctls=set(),
        join_paths={"uts": "/proc/42/ns/uts"}))
    spaces = {n["type"]: n.get("path", "") for n in config["linux"]["namespaces"]}
    assert spaces["uts"] == "/proc/42/ns/uts" and "hostname" not in config
    host = build(uts_mode="host")
    assert "uts" not in {n["type"] for n in host["linux"]["namespaces"]}
    assert "hostname" not in host and build()["hostname"] == CID[:12]


def test_cgroup_parent_of_the_container() -> None:
    assert build()["linux"]["cgroupsPath"] == f"/muelle-x/{CID}"
    cspec = pb.ContainerSpec(args=["sh"], cgroup_parent="/kubepods/pod1")
    config = spec.build_config(spec.BundleInput(
        id=CID, spec=cspec, user=User(uid=0, gid=0), available_sysctls=set(),
        cgroup_parent=cspec.cgroup_parent))
    assert config["linux"]["cgroupsPath"] == f"/kubepods/pod1/{CID}"


def test_shared_propagation_needs_runc_or_crun() -> None:
    mounts = [types_pb2.VolumeMount(type="bind", source="/s", target="/d",
                                    propagation="rshared")]
    spec.check_propagation(mounts, "runc")
    with pytest.raises(InvalidArgument, match="muelle-runtime"):
        spec.check_propagation(mounts, "muelle")
    assert spec.rootfs_propagation([{"options": ["rbind", "rshared"]}]) == "rshared"


def test_a_shareable_shm_replaces_the_containers_tmpfs() -> None:
    from services.shim import shm

    config = build()
    shm.use(config, "/var/lib/muelle/shim/containers/x/shm")
    dev_shm = [m for m in config["mounts"] if m["destination"] == "/dev/shm"]
    assert dev_shm == [{"destination": "/dev/shm", "type": "bind",
                        "source": "/var/lib/muelle/shim/containers/x/shm",
                        "options": ["rbind", "nosuid", "noexec", "nodev"]}]


def test_ulimits_become_rlimits_and_stay_under_the_hosts_hard_limits() -> None:
    ulimits = [types_pb2.Ulimit(name="nofile", soft=100, hard=200),
               types_pb2.Ulimit(name="core", soft=-1, hard=-1),
               types_pb2.Ulimit(name="nofile", soft=1024, hard=2048)]  # the last one wins
    cfg = build(ulimits=ulimits)
    assert cfg["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
        {"type": "RLIMIT_CORE", "soft": spec.RLIM_INFINITY, "hard": spec.RLIM_INFINITY}]
    assert "rlimits" not in build()["process"]
    assert spec.rlimits(ulimits, {"nofile": 2048, "core": -1})
    with pytest.raises(InvalidArgument, match="--ulimit nofile: hard limit 2048 is above "
                                              r"this host's 1000 \(raising it needs "
                                              "CAP_SYS_RESOURCE"):
        spec.rlimits(ulimits, {"nofile": 1000})
    with pytest.raises(InvalidArgument, match="hard limit unlimited is above"):
        spec.rlimits(ulimits, {"core": 0})


def test_rlimit_ceilings_are_the_hard_limits_without_cap_sys_resource() -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ceilings = spec.host_rlimit_ceilings(["nofile"])
    if not spec._has_cap(spec.CAP_SYS_RESOURCE):
        assert ceilings == {"nofile": -1 if hard == resource.RLIM_INFINITY else hard}
    else:
        assert ceilings["nofile"] >= hard


def test_shm_size_and_oom_score_adj() -> None:
    dev_shm = [m for m in build(shm_size=128 << 20)["mounts"]
               if m["destination"] == "/dev/shm"]
    assert f"size={128 << 20}" in dev_shm[0]["options"]
    default = [m for m in build()["mounts"] if m["destination"] == "/dev/shm"]
    assert f"size={spec.SHM_SIZE}" in default[0]["options"]
    assert build(oom_score_adj=300)["process"]["oomScoreAdj"] == 300
    low = pb.ContainerSpec(args=["sh"], oom_score_adj=-500)
    with pytest.raises(InvalidArgument, match=r"--oom-score-adj -500: below this host's 0 "
                                              r"\(lowering it needs CAP_SYS_RESOURCE\)"):
        spec.build_config(spec.BundleInput(id=CID, spec=low, user=User(uid=0, gid=0),
                                           oom_score_floor=0))
    assert build(oom_score_adj=-500)["process"]["oomScoreAdj"] == -500  # floor -1000
    assert "oomScoreAdj" not in build()["process"]


def test_devices_are_created_and_allowed_in_the_device_cgroup() -> None:
    node = {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666,
            "uid": 0, "gid": 0}
    rule = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}
    cfg = spec.build_config(spec.BundleInput(
        id=CID, spec=pb.ContainerSpec(args=["sh"]), user=User(uid=0, gid=0),
        devices=[node], device_rules=[rule]))
    assert cfg["linux"]["devices"] == [node]
    # after Docker's defaults (deny all, then the usual nodes), so it is allowed
    assert cfg["linux"]["resources"]["devices"] == [*spec.DEVICE_RULES, rule]
    assert "devices" not in build()["linux"]
