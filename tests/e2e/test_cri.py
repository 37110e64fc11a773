"""muelle-cri, driven the way the kubelet and crictl drive a runtime: through the CRI
socket with stubs generated from the cri-api contract (protos/k8s/cri/v1/api.proto).

Real engine (the four services and muelle-cri as processes), real registry, real pods:
the busybox test image is the pod's infra image too (its `sleep` holds the pod's network).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from k8s.cri.v1 import api_pb2, api_pb2_grpc

from engine import launcher
from tests.support import spdy_client
from tests.support.engine import Engine

pytestmark = pytest.mark.root

T = TypeVar("T")
# The engine's four services and the CRI (not the Docker API: nothing here needs it).
CRI_ENGINE = (*launcher.ORDER, "cri")


class Cri:
    def __init__(self, engine: Engine) -> None:
        self.channel = grpc.insecure_channel(f"unix:{engine.run}/cri.sock")
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.img = api_pb2_grpc.ImageServiceStub(self.channel)


@pytest.fixture(scope="module")
def cri_engine(busybox_ref: str) -> Iterator[Engine]:
    extra = (f'[cri]\nsandbox_image = "{busybox_ref}"\n'
             'sandbox_command = ["sleep", "2147483647"]\n')
    with Engine(services=CRI_ENGINE, extra_config=extra) as engine:
        yield engine


@pytest.fixture(scope="module")
def cri(cri_engine: Engine) -> Iterator[Cri]:
    client = Cri(cri_engine)
    yield client
    # Pods a failed test left: remove them through CRI, as the kubelet would.
    for pod in client.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
        client.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    client.channel.close()


@pytest.fixture(scope="module")
def image(cri: Cri, busybox_ref: str) -> str:
    reply = cri.img.PullImage(api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image=busybox_ref)))
    return reply.image_ref


def until(fetch: Callable[[], T], ok: Callable[[T], bool], what: str,
          limit: float = 30.0) -> T:
    """Poll ``fetch`` until ``ok`` (bounded), for states that change asynchronously."""
    deadline = time.monotonic() + limit
    while True:
        value = fetch()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r}")
        time.sleep(0.05)


def pod_config(name: str, log_dir: Path, **labels: str) -> api_pb2.PodSandboxConfig:
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default",
                                            uid=f"uid-{name}", attempt=0),
        hostname=f"{name}-host", log_directory=str(log_dir), labels=labels,
        annotations={"note": "from test_cri"})


def run_pod(cri: Cri, name: str, log_dir: Path, **labels: str
            ) -> tuple[str, api_pb2.PodSandboxConfig]:
    config = pod_config(name, log_dir, **labels)
    sid = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    return sid, config


def container(cri: Cri, sid: str, pod: api_pb2.PodSandboxConfig, name: str, image: str,
              cmd: list[str], start: bool = True, **labels: str) -> str:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name, attempt=0),
        image=api_pb2.ImageSpec(image=image), command=cmd[:1], args=cmd[1:],
        envs=[api_pb2.KeyValue(key="GREETING", value=b"hello from env")],
        labels=labels, log_path=f"{name}/0.log")
    cid = cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=sid, config=config, sandbox_config=pod)).container_id
    if start:
        cri.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    return cid


def status(cri: Cri, cid: str) -> api_pb2.ContainerStatus:
    return cri.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status


def exec_sync(cri: Cri, cid: str, *cmd: str, timeout: int = 30) -> api_pb2.ExecSyncResponse:
    return cri.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=list(cmd),
                                                   timeout=timeout))


def code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    error: Any = info.value  # a grpc.Call too, which RpcError's stubs do not say
    return error.code(), error.details() or ""


def test_version_status_and_runtime_config(cri: Cri) -> None:
    version = cri.rt.Version(api_pb2.VersionRequest())
    assert (version.runtime_name, version.runtime_api_version) == ("muelle", "v1")
    assert version.runtime_version
    conditions = cri.rt.Status(api_pb2.StatusRequest()).status.conditions
    assert {(c.type, c.status) for c in conditions} == {("RuntimeReady", True),
                                                        ("NetworkReady", True)}
    config = cri.rt.RuntimeConfig(api_pb2.RuntimeConfigRequest())
    assert config.linux.cgroup_driver == api_pb2.CGROUPFS


def test_images_pull_status_list_fsinfo(cri: Cri, image: str, busybox_ref: str) -> None:
    assert image.startswith("sha256:")
    found = cri.img.ImageStatus(api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image=busybox_ref))).image
    assert found.id == image and busybox_ref in found.repo_tags and found.size > 0
    listed = cri.img.ListImages(api_pb2.ListImagesRequest()).images
    assert image in [i.id for i in listed]
    # An image that is not there is an empty answer, not an error (the kubelet's check
    # before every pull).
    missing = cri.img.ImageStatus(api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image="127.0.0.1:1/not/there:1")))
    assert not missing.HasField("image")
    fs = cri.img.ImageFsInfo(api_pb2.ImageFsInfoRequest()).image_filesystems
    assert fs[0].used_bytes.value > 0 and fs[0].fs_id.mountpoint


def test_pod_runs_containers_that_share_its_network(cri: Cri, image: str, tmp_path: Path
                                                    ) -> None:
    sid, pod = run_pod(cri, "web", tmp_path, app="web")
    st = cri.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert st.state == api_pb2.SANDBOX_READY and st.metadata.name == "web"
    assert st.network.ip and st.labels["app"] == "web"
    assert st.annotations["note"] == "from test_cri"
    server = container(cri, sid, pod, "server", image, [
        "sh", "-c", "echo pod-local > /tmp/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp"])
    client = container(cri, sid, pod, "client", image, ["sleep", "1000"])
    until(lambda: status(cri, server).state, lambda s: s == api_pb2.CONTAINER_RUNNING,
          "server running")
    # The client reaches the server on 127.0.0.1: one network namespace per pod.
    got = until(lambda: exec_sync(cri, client, "wget", "-qO-", "http://127.0.0.1:8080/"),
                lambda r: r.exit_code == 0, "wget from the pod's other container")
    assert got.stdout == b"pod-local\n"
    assert exec_sync(cri, client, "hostname").stdout == b"web-host\n"
    assert exec_sync(cri, client, "sh", "-c", "echo $GREETING").stdout == b"hello from env\n"
    failed = exec_sync(cri, client, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (failed.exit_code, failed.stdout, failed.stderr) == (3, b"out\n", b"err\n")
    cri.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sid))
    st = cri.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert st.state == api_pb2.SANDBOX_NOTREADY
    assert status(cri, client).state == api_pb2.CONTAINER_EXITED
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert not cri.rt.ListContainers(api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(pod_sandbox_id=sid))).containers


def test_exit_code_and_logs_in_cri_format(cri: Cri, image: str, tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "job", tmp_path)
    cid = container(cri, sid, pod, "worker", image, [
        "sh", "-c", "echo first line; echo to stderr >&2; printf 'no newline'; exit 7"])
    st = until(lambda: status(cri, cid), lambda s: s.state == api_pb2.CONTAINER_EXITED,
               "worker exited")
    assert (st.exit_code, st.reason) == (7, "Error")
    assert st.finished_at >= st.started_at > 0 and st.created_at > 0
    assert st.log_path == str(tmp_path / "worker/0.log")
    lines = Path(st.log_path).read_bytes().splitlines()
    # "<RFC 3339 nano> <stream> <F|P> <text>": the kubelet's reader splits on spaces.
    parsed = sorted((s.split(b" ", 3)[1], s.split(b" ", 3)[2], s.split(b" ", 3)[3])
                    for s in lines)
    assert parsed == [(b"stderr", b"F", b"to stderr"), (b"stdout", b"F", b"first line"),
                      (b"stdout", b"P", b"no newline")]
    for line in lines:
        stamp = line.split(b" ", 1)[0].decode()
        assert stamp.endswith("Z") and "T" in stamp
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_stop_container_with_timeout(cri: Cri, image: str, tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "stopper", tmp_path)
    # A process that ignores SIGTERM: only the SIGKILL after the timeout stops it.
    cid = container(cri, sid, pod, "sleeper", image,
                    ["sh", "-c", "trap '' TERM; exec sleep 1000"])
    cri.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1))
    st = status(cri, cid)
    assert st.state == api_pb2.CONTAINER_EXITED and st.exit_code == 137
    # Stop and remove are idempotent, as the kubelet's retries need.
    cri.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1))
    cri.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    cri.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    code, _ = code_of(lambda: status(cri, cid))
    assert code == grpc.StatusCode.NOT_FOUND
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
    cri.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sid))
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_list_filters(cri: Cri, image: str, tmp_path: Path) -> None:
    a, pod_a = run_pod(cri, "alpha", tmp_path, tier="front")
    b, pod_b = run_pod(cri, "beta", tmp_path, tier="back")
    running = container(cri, a, pod_a, "run", image, ["sleep", "1000"], role="x")
    created = container(cri, a, pod_a, "idle", image, ["true"], start=False, role="y")
    other = container(cri, b, pod_b, "other", image, ["sleep", "1000"], role="x")
    cri.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=b))

    def pods(**kw: Any) -> set[str]:
        flt = api_pb2.PodSandboxFilter(**kw)
        items = cri.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(filter=flt)).items
        return {p.id for p in items}

    def ctrs(**kw: Any) -> set[str]:
        flt = api_pb2.ContainerFilter(**kw)
        return {c.id for c in cri.rt.ListContainers(
            api_pb2.ListContainersRequest(filter=flt)).containers}

    assert pods() >= {a, b}
    assert pods(label_selector={"tier": "front"}) == {a}
    assert pods(id=b[:12]) == {b}
    ready = api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY)
    assert a in pods(state=ready) and b not in pods(state=ready)
    assert ctrs(pod_sandbox_id=a) == {running, created}
    assert ctrs(label_selector={"role": "x"}) == {running, other}
    created_state = api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_CREATED)
    assert ctrs(pod_sandbox_id=a, state=created_state) == {created}
    assert ctrs(id=other) == {other}
    listed = cri.rt.ListContainers(api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(id=running))).containers[0]
    assert (listed.pod_sandbox_id, listed.metadata.name, listed.labels["role"]) == (a, "run", "x")
    for sid in (a, b):
        cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert not pods() & {a, b}


def test_bad_requests_get_clear_errors(cri: Cri, image: str, tmp_path: Path) -> None:
    code, msg = code_of(lambda: cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=api_pb2.PodSandboxConfig())))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "metadata" in msg
    code, msg = code_of(lambda: cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id="f" * 64, config=api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="x"), image=api_pb2.ImageSpec(image=image)))))
    assert code == grpc.StatusCode.NOT_FOUND and "sandbox" in msg
    code, msg = code_of(lambda: cri.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id="f" * 64)))
    assert code == grpc.StatusCode.NOT_FOUND
    code, msg = code_of(lambda: cri.rt.UpdateContainerResources(
        api_pb2.UpdateContainerResourcesRequest(container_id="x")))
    assert code == grpc.StatusCode.NOT_FOUND and "'x'" in msg
    code, msg = code_of(lambda: cri.rt.Exec(api_pb2.ExecRequest(container_id="f" * 64,
                                                                cmd=["sh"], stdout=True)))
    assert code == grpc.StatusCode.NOT_FOUND
    # One pod name per (name, namespace, uid, attempt), as the kubelet relies on.
    sid, _ = run_pod(cri, "twice", tmp_path)
    code, _ = code_of(lambda: run_pod(cri, "twice", tmp_path))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_the_one_process_engine_serves_cri_too() -> None:
    with Engine(services=CRI_ENGINE, combined=True) as engine:
        pids = {launcher.running_pid(engine.cfg, name) for name in CRI_ENGINE}
        assert len(pids) == 1 and None not in pids
        with grpc.insecure_channel(f"unix:{engine.run}/cri.sock") as ch:
            reply = api_pb2_grpc.RuntimeServiceStub(ch).Version(api_pb2.VersionRequest())
        assert reply.runtime_name == "muelle"


def test_exec_sync_timeout_kills_the_process(cri: Cri, image: str, tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "probe", tmp_path)
    cid = container(cri, sid, pod, "app", image, ["sleep", "1000"])
    code, msg = code_of(lambda: exec_sync(cri, cid, "sleep", "4242", timeout=1))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "timed out" in msg
    # Gone when ExecSync returns, not some time later (the kubelet probes again at once).
    assert b"sleep 4242" not in exec_sync(cri, cid, "ps", "-o", "args").stdout
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_container_stats(cri: Cri, image: str, tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "stats", tmp_path)
    busy = container(cri, sid, pod, "busy", image, ["sh", "-c", "while :; do :; done"],
                     tier="busy")
    idle = container(cri, sid, pod, "idle", image, ["true"], start=False)
    stats = until(lambda: cri.rt.ContainerStats(api_pb2.ContainerStatsRequest(
        container_id=busy)).stats, lambda s: s.cpu.usage_core_nano_seconds.value > 0,
        "CPU time of a busy container")
    assert stats.attributes.metadata.name == "busy" and stats.memory.working_set_bytes.value > 0
    listed = cri.rt.ListContainerStats(api_pb2.ListContainerStatsRequest(
        filter=api_pb2.ContainerStatsFilter(pod_sandbox_id=sid))).stats
    assert {s.attributes.id for s in listed} == {busy, idle}
    by_label = cri.rt.ListContainerStats(api_pb2.ListContainerStatsRequest(
        filter=api_pb2.ContainerStatsFilter(label_selector={"tier": "busy"}))).stats
    assert [s.attributes.id for s in by_label] == [busy]
    pod_stats = cri.rt.PodSandboxStats(api_pb2.PodSandboxStatsRequest(
        pod_sandbox_id=sid)).stats
    assert pod_stats.attributes.metadata.name == "stats"
    linux = pod_stats.linux
    assert linux.cpu.usage_core_nano_seconds.value >= stats.cpu.usage_core_nano_seconds.value
    assert linux.process.process_count.value >= 2  # the infra process and the busy loop
    assert linux.network.default_interface.name == "eth0"
    assert {c.attributes.id for c in linux.containers} == {busy, idle}
    listed_pods = cri.rt.ListPodSandboxStats(api_pb2.ListPodSandboxStatsRequest(
        filter=api_pb2.PodSandboxStatsFilter(id=sid))).stats
    assert [p.attributes.id for p in listed_pods] == [sid]
    # The writable layer: what the container wrote, on the image store's filesystem.
    exec_sync(cri, busy, "dd", "if=/dev/zero", "of=/written", "bs=1024", "count=2048")
    layer = cri.rt.ContainerStats(api_pb2.ContainerStatsRequest(
        container_id=busy)).stats.writable_layer
    assert layer.used_bytes.value >= 2048 * 1024 and layer.timestamp > 0
    assert layer.fs_id.mountpoint
    idle_layer = [s for s in listed if s.attributes.id == idle][0].writable_layer
    assert idle_layer.HasField("used_bytes")  # a container that never ran has one too
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_reopen_container_log(cri: Cri, image: str, tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "rotate", tmp_path)
    cid = container(cri, sid, pod, "talker", image, [
        "sh", "-c", "echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after; "
        "sleep 1000"])
    log = tmp_path / "talker/0.log"
    until(lambda: log.read_bytes() if log.exists() else b"", lambda b: b"before" in b,
          "first line")
    log.rename(tmp_path / "talker/0.log.1")  # the kubelet's rotation
    cri.rt.ReopenContainerLog(api_pb2.ReopenContainerLogRequest(container_id=cid))
    assert log.exists()  # at once, as the kubelet checks
    exec_sync(cri, cid, "touch", "/tmp/go")
    until(lambda: log.read_bytes(), lambda b: b"stdout F after" in b, "line after rotation")
    assert b"after" not in (tmp_path / "talker/0.log.1").read_bytes()
    cri.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0))
    code, _ = code_of(lambda: cri.rt.ReopenContainerLog(api_pb2.ReopenContainerLogRequest(
        container_id=cid)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_pod_namespaces_dns_sysctls_and_paths(cri: Cri, image: str, tmp_path: Path) -> None:
    config = pod_config("spaces", tmp_path)
    config.dns_config.servers.append("10.10.10.10")
    config.dns_config.searches.append("pod.example")
    config.dns_config.options.append("ndots:2")
    config.linux.sysctls.update({"kernel.shm_rmid_forced": "1",
                                 "net.ipv4.ip_local_port_range": "30000 40000"})
    sid = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    shared = container(cri, sid, config, "shared", image, ["sleep", "1000"])
    own = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="own"), image=api_pb2.ImageSpec(image=image),
        command=["sleep", "1001"], linux=api_pb2.LinuxContainerConfig(
            security_context=api_pb2.LinuxContainerSecurityContext(
                namespace_options=api_pb2.NamespaceOption(pid=api_pb2.CONTAINER),
                masked_paths=["/etc/group"], readonly_paths=["/tmp"])))
    alone = cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=sid, config=own, sandbox_config=config)).container_id
    cri.rt.StartContainer(api_pb2.StartContainerRequest(container_id=alone))

    def ns(cid: str, kind: str) -> bytes:
        return exec_sync(cri, cid, "readlink", f"/proc/self/ns/{kind}").stdout

    # IPC is the pod's for both; PID the pod's (the infra's sleep is visible) unless the
    # container asks for its own.
    assert ns(shared, "ipc") == ns(alone, "ipc")
    assert ns(shared, "pid") != ns(alone, "pid")
    assert b"sleep 2147483647" in exec_sync(cri, shared, "ps", "-o", "args").stdout
    assert b"sleep 2147483647" not in exec_sync(cri, alone, "ps", "-o", "args").stdout
    resolv = exec_sync(cri, shared, "cat", "/etc/resolv.conf").stdout.decode()
    assert {"nameserver 10.10.10.10", "search pod.example", "options ndots:2"} <= set(
        resolv.splitlines())
    assert "nameserver" not in resolv.replace("nameserver 10.10.10.10", "")
    assert exec_sync(cri, alone, "cat", "/proc/sys/kernel/shm_rmid_forced").stdout == b"1\n"
    assert exec_sync(cri, alone, "cat", "/proc/sys/net/ipv4/ip_local_port_range"
                     ).stdout.split() == [b"30000", b"40000"]
    assert exec_sync(cri, alone, "cat", "/etc/group").stdout == b""  # masked
    assert exec_sync(cri, shared, "cat", "/etc/group").stdout != b""
    assert exec_sync(cri, alone, "touch", "/tmp/x").exit_code != 0  # read-only
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_host_pid_pod(cri: Cri, image: str, tmp_path: Path) -> None:
    config = pod_config("hostpid", tmp_path)
    config.linux.security_context.namespace_options.pid = api_pb2.NODE
    sid = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    cid = container(cri, sid, config, "looker", image, ["sleep", "1000"])
    host = os.readlink("/proc/self/ns/pid").encode()
    assert exec_sync(cri, cid, "readlink", "/proc/self/ns/pid").stdout.strip() == host
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_the_log_file_exists_when_start_returns(cri: Cri, image: str, tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "quiet", tmp_path)
    container(cri, sid, pod, "silent", image, ["sleep", "1000"])
    assert (tmp_path / "silent/0.log").exists()  # the kubelet opens it at once
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def test_host_to_container_mount_propagation(cri: Cri, image: str, tmp_path: Path) -> None:
    """Kubernetes' mountPropagation HostToContainer: what the host mounts under the volume
    later appears in the container (the host side is a shared mount, as the kubelet's
    is). Bidirectional is refused with muelle-runtime (it keeps container mounts off the
    host)."""
    shared_dir = tmp_path / "shared"
    src = tmp_path / "src"
    for d in (shared_dir / "from-host", src):
        d.mkdir(parents=True)
    (src / "flag").write_text("x")
    made: list[str] = []
    try:
        _mount("--bind", str(shared_dir), str(shared_dir))
        made.append(str(shared_dir))
        _mount("--make-rshared", str(shared_dir))
        sid, pod = run_pod(cri, "propagate", tmp_path)

        def config(name: str, kind: int) -> api_pb2.ContainerConfig:
            return api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name=name),
                image=api_pb2.ImageSpec(image=image), command=["sleep", "1000"],
                mounts=[api_pb2.Mount(container_path="/data", host_path=str(shared_dir),
                                      propagation=kind)])  # type: ignore[arg-type]

        cid = cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=sid, config=config("down", api_pb2.PROPAGATION_HOST_TO_CONTAINER),
            sandbox_config=pod)).container_id
        cri.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        _mount("--bind", str(src), str(shared_dir / "from-host"))
        made.append(str(shared_dir / "from-host"))
        assert exec_sync(cri, cid, "cat", "/data/from-host/flag").stdout == b"x"
        code, msg = code_of(lambda: cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=sid, config=config("both", api_pb2.PROPAGATION_BIDIRECTIONAL),
            sandbox_config=pod)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "muelle-runtime" in msg
        cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
    finally:
        for path in reversed(made):
            subprocess.run(["umount", "-l", path], capture_output=True)


def test_a_restarted_cri_catches_up_on_logs_without_repeating(
        cri_engine: Engine, cri: Cri, image: str, tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "restart", tmp_path)
    cid = container(cri, sid, pod, "counter", image, [
        "sh", "-c", "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.05; done"])
    log = tmp_path / "counter/0.log"

    def numbers() -> list[int]:
        text = log.read_bytes() if log.exists() else b""
        return [int(line.rsplit(b" ", 1)[1]) for line in text.splitlines()
                if line.rsplit(b" ", 1)[1].isdigit()]

    until(numbers, lambda n: len(n) >= 3, "first lines")
    launcher.stop(cri_engine.cfg, ("cri",))
    seen = len(numbers())
    # The container keeps writing while muelle-cri is down: the engine keeps it.
    until(lambda: cri_engine.cli("logs", "--tail", "1", cid).stdout,
          lambda out: int(out.split()[-1]) > seen + 10, "output while muelle-cri is down")
    launcher.start(cri_engine.cfg, str(cri_engine.config_file), ("cri",))
    got = until(numbers, lambda n: len(n) > seen + 20, "lines after the restart")
    assert got == list(range(len(got)))  # every line once, in order
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_streaming_exec_attach_and_port_forward(cri: Cri, image: str, tmp_path: Path) -> None:
    """What `kubectl exec/attach/port-forward` do through the kubelet: the RPC gives a URL,
    the client speaks SPDY/3.1 to it (tests/support/spdy_client.py)."""
    sid, pod = run_pod(cri, "stream", tmp_path)
    web = container(cri, sid, pod, "web", image, [
        "sh", "-c", "echo served > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"])
    url = cri.rt.Exec(api_pb2.ExecRequest(container_id=web, cmd=["sh", "-c",
                      "cat; echo to-err >&2; exit 5"], stdin=True, stdout=True,
                      stderr=True)).url
    out, err, status = spdy_client.remotecommand(url, stdin=b"from stdin\n")
    assert (out, err) == (b"from stdin\n", b"to-err\n")
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"][0]["message"] == "5"
    url = cri.rt.Exec(api_pb2.ExecRequest(container_id=web, cmd=["tty"], tty=True,
                                          stdout=True)).url
    out, _, status = spdy_client.remotecommand(url, tty=True)
    assert out.startswith(b"/dev/pts/") and status["status"] == "Success"
    # One use per URL.
    with pytest.raises(ConnectionError, match="404"):
        spdy_client.remotecommand(url)
    url = cri.rt.PortForward(api_pb2.PortForwardRequest(pod_sandbox_id=sid, port=[8080])).url
    reply = spdy_client.port_forward(url, 8080, b"GET /index.html HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.") and reply.endswith(b"served\n")
    # Attach: the container's stdin and output (created with stdin, as kubectl run -i).
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="echo"), image=api_pb2.ImageSpec(image=image),
        command=["sh", "-c", "read line; echo got $line"], stdin=True, stdin_once=True)
    cid = cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=sid, config=config, sandbox_config=pod)).container_id
    cri.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    url = cri.rt.Attach(api_pb2.AttachRequest(container_id=cid, stdin=True, stdout=True,
                                              stderr=True)).url
    out, _, status = spdy_client.remotecommand(url, stdin=b"hello\n")
    assert out == b"got hello\n" and status["status"] == "Success"
    # Without stdin_once the end of the client's stdin is a detach, as in containerd
    # (`echo x | crictl attach -i` returns): the container's stdin stays open, it runs on.
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="cat"), image=api_pb2.ImageSpec(image=image),
        command=["cat"], stdin=True)
    cat = cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=sid, config=config, sandbox_config=pod)).container_id
    cri.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cat))
    for line in (b"first\n", b"second\n"):
        url = cri.rt.Attach(api_pb2.AttachRequest(container_id=cat, stdin=True, stdout=True,
                                                  stderr=True)).url
        out, _, status = spdy_client.remotecommand(url, stdin=line, echoed=line)
        assert out == line and status["status"] == "Success"
        assert cri.rt.ContainerStatus(api_pb2.ContainerStatusRequest(
            container_id=cat)).status.state == api_pb2.CONTAINER_RUNNING
    code, _ = code_of(lambda: cri.rt.Exec(api_pb2.ExecRequest(
        container_id=web, cmd=["true"], tty=True, stderr=True)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def _cgroup_value(cri: Cri, cid: str, v1_file: str, v2_file: str) -> str:
    """A limit as the container's own cgroup shows it (read from inside, where the cgroup
    filesystem is the container's)."""
    return exec_sync(cri, cid, "sh", "-c", f"cat /sys/fs/cgroup/{v2_file} 2>/dev/null || "
                     f"cat /sys/fs/cgroup/{v1_file}").stdout.decode().strip()


def test_update_container_resources_changes_the_live_cgroup(cri: Cri, image: str,
                                                            tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "resize", tmp_path)
    cid = container(cri, sid, pod, "app", image, ["sleep", "1000"])
    mib = 1024 * 1024
    cri.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=api_pb2.LinuxContainerResources(
            memory_limit_in_bytes=64 * mib, cpu_period=100000, cpu_quota=50000,
            cpu_shares=512)))
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():  # cgroup v2
        assert _cgroup_value(cri, cid, "", "memory.max") == str(64 * mib)
        assert _cgroup_value(cri, cid, "", "cpu.max") == "50000 100000"
    else:
        assert _cgroup_value(cri, cid, "memory/memory.limit_in_bytes", "-") == str(64 * mib)
        assert _cgroup_value(cri, cid, "cpu/cpu.cfs_quota_us", "-") == "50000"
        assert _cgroup_value(cri, cid, "cpu/cpu.shares", "-") == "512"
    # Raised past the old memory+swap (128 MiB): still applies (v1 writes swap first).
    cri.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=api_pb2.LinuxContainerResources(
            memory_limit_in_bytes=256 * mib)))
    assert _cgroup_value(cri, cid, "memory/memory.limit_in_bytes", "memory.max") \
        == str(256 * mib)
    # Refused values change nothing and say why.
    code, message = code_of(lambda: cri.rt.UpdateContainerResources(
        api_pb2.UpdateContainerResourcesRequest(container_id=cid, linux=(
            api_pb2.LinuxContainerResources(memory_limit_in_bytes=1024)))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "6MB" in message
    assert _cgroup_value(cri, cid, "memory/memory.limit_in_bytes", "memory.max") \
        == str(256 * mib)
    code, _ = code_of(lambda: cri.rt.UpdateContainerResources(
        api_pb2.UpdateContainerResourcesRequest(container_id="0" * 64)))
    assert code == grpc.StatusCode.NOT_FOUND
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def _verbose_info(info: Any) -> dict[str, Any]:
    """The document of a verbose ``info`` map, as crictl shows it under "info"."""
    assert set(info) == {"info"}
    doc: dict[str, Any] = json.loads(info["info"])
    return doc


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_verbose_status_as_crictl_inspect_shows_it(cri: Cri, image: str, tmp_path: Path,
                                                    busybox_layout: Path) -> None:
    sid, pod = run_pod(cri, "verbose", tmp_path)
    cid = container(cri, sid, pod, "app", image, ["sleep", "1001"])
    assert not cri.rt.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=cid)).info  # only when asked for
    reply = cri.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid,
                                                                  verbose=True))
    info = _verbose_info(reply.info)
    # `crictl inspect --template '{{.info.pid}}'`: the container's process on this host,
    # in its pod's network namespace.
    assert _cmdline(info["pid"]) == ["sleep", "1001"]
    assert info["sandboxID"] == sid
    assert info["config"]["metadata"]["name"] == "app"
    assert info["runtimeSpec"]["process"]["args"] == ["sleep", "1001"]
    pod_info = _verbose_info(cri.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=sid, verbose=True)).info)
    assert _cmdline(pod_info["pid"]) == ["sleep", "2147483647"]  # the infra process
    assert os.readlink(f"/proc/{info['pid']}/ns/net") \
        == os.readlink(f"/proc/{pod_info['pid']}/ns/net")
    assert pod_info["processStatus"] == "running" and not pod_info["netNamespaceClosed"]
    assert pod_info["config"]["metadata"]["name"] == "verbose"
    assert pod_info["config"]["hostname"] == "verbose-host"
    assert pod_info["runtimeSpec"]["hostname"] == "verbose-host"
    cri.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sid))
    stopped = _verbose_info(cri.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=sid, verbose=True)).info)
    assert stopped["processStatus"] == "stopped" and stopped["netNamespaceClosed"]
    # `crictl inspecti`: the image's OCI config, as the registry served it.
    index = json.loads((busybox_layout / "index.json").read_text())

    def blob(digest: str) -> Any:
        return json.loads((busybox_layout / "blobs" / "sha256"
                           / digest.split(":", 1)[1]).read_bytes())
    config = blob(blob(index["manifests"][0]["digest"])["config"]["digest"])
    image_info = _verbose_info(cri.img.ImageStatus(api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image=image), verbose=True)).info)
    assert image_info["imageSpec"] == config
    assert image_info["chainID"].startswith("sha256:")
    assert not cri.img.ImageStatus(api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image=image))).info
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_container_status_resources_follow_create_and_update(cri: Cri, image: str,
                                                             tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "resources", tmp_path)
    mib = 1024 * 1024
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="app"), image=api_pb2.ImageSpec(image=image),
        command=["sleep", "1000"], linux=api_pb2.LinuxContainerConfig(
            resources=api_pb2.LinuxContainerResources(
                memory_limit_in_bytes=64 * mib, cpu_shares=256, cpu_period=100000,
                cpu_quota=50000)))
    cid = cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=sid, config=config, sandbox_config=pod)).container_id
    created = status(cri, cid).resources.linux
    assert (created.memory_limit_in_bytes, created.cpu_shares, created.cpu_period,
            created.cpu_quota) == (64 * mib, 256, 100000, 50000)
    cri.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    cri.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=api_pb2.LinuxContainerResources(
            memory_limit_in_bytes=128 * mib, cpu_quota=20000, cpuset_cpus="0")))
    updated = status(cri, cid).resources.linux
    assert (updated.memory_limit_in_bytes, updated.cpu_shares, updated.cpu_period,
            updated.cpu_quota, updated.cpuset_cpus) == (128 * mib, 256, 100000, 20000, "0")
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_stats_cpu_rate_and_memory_detail(cri: Cri, image: str, tmp_path: Path) -> None:
    sid, pod = run_pod(cri, "rates", tmp_path)
    mib = 1024 * 1024
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="busy"), image=api_pb2.ImageSpec(image=image),
        command=["sh", "-c", "while :; do :; done"], linux=api_pb2.LinuxContainerConfig(
            resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=64 * mib)))
    cid = cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=sid, config=config, sandbox_config=pod)).container_id
    cri.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    # usageNanoCores is a rate between two samples: a busy loop uses a share of a core.
    stats = until(lambda: cri.rt.ListContainerStats(api_pb2.ListContainerStatsRequest(
        filter=api_pb2.ContainerStatsFilter(id=cid))).stats[0],
        lambda s: s.cpu.usage_nano_cores.value > 0, "usageNanoCores of a busy container")
    memory = stats.memory
    assert memory.rss_bytes.value > 0 and memory.page_faults.value > 0
    assert memory.HasField("major_page_faults")
    assert memory.usage_bytes.value >= memory.working_set_bytes.value > 0
    assert memory.available_bytes.value == 64 * mib - memory.working_set_bytes.value
    pod_cpu = until(lambda: cri.rt.PodSandboxStats(api_pb2.PodSandboxStatsRequest(
        pod_sandbox_id=sid)).stats.linux.cpu, lambda c: c.usage_nano_cores.value > 0,
        "usageNanoCores of a pod with a busy container")
    assert pod_cpu.usage_core_nano_seconds.value > 0
    # The writable layer's inodes: a directory and two files more after writing them.

    def inodes() -> int:
        return cri.rt.ContainerStats(api_pb2.ContainerStatsRequest(
            container_id=cid)).stats.writable_layer.inodes_used.value
    before = inodes()
    assert before >= 1  # the layer's top directory
    exec_sync(cri, cid, "sh", "-c", "mkdir /made && touch /made/a /made/b")
    assert inodes() == before + 3
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_container_events_stream_the_lifecycle(cri: Cri, image: str, tmp_path: Path) -> None:
    """GetContainerEvents as the kubelet's evented PLEG reads it: created, started,
    stopped (by CRI and by the process exiting on its own) and deleted, for containers and
    their sandbox, with the pod's statuses, pushed as they happen."""
    import queue
    import threading

    call: Any = cri.rt.GetContainerEvents(api_pb2.GetEventsRequest())
    call.initial_metadata()  # subscribed: what follows reaches this stream
    seen: queue.Queue[api_pb2.ContainerEventResponse] = queue.Queue()

    def read() -> None:
        with contextlib.suppress(grpc.RpcError):  # cancelled at the end
            for event in call:
                seen.put(event)

    threading.Thread(target=read, daemon=True).start()
    got: list[tuple[str, int]] = []

    def expect(cid: str, kind: api_pb2.ContainerEventType.ValueType
               ) -> api_pb2.ContainerEventResponse:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                event = seen.get(timeout=0.5)
            except queue.Empty:
                continue
            got.append((event.container_id, event.container_event_type))
            if (event.container_id, event.container_event_type) == (cid, kind):
                return event
        raise AssertionError(f"no {api_pb2.ContainerEventType.Name(kind)} for {cid[:12]}; "
                             f"got {got}")

    sid, pod = run_pod(cri, "events", tmp_path)
    expect(sid, api_pb2.CONTAINER_CREATED_EVENT)
    expect(sid, api_pb2.CONTAINER_STARTED_EVENT)
    quick = container(cri, sid, pod, "quick", image, ["sh", "-c", "exit 3"], start=False)
    created = expect(quick, api_pb2.CONTAINER_CREATED_EVENT)
    assert created.pod_sandbox_status.id == sid
    assert quick in [c.id for c in created.containers_statuses]
    cri.rt.StartContainer(api_pb2.StartContainerRequest(container_id=quick))
    expect(quick, api_pb2.CONTAINER_STARTED_EVENT)
    stopped = expect(quick, api_pb2.CONTAINER_STOPPED_EVENT)  # exited by itself
    mine = [c for c in stopped.containers_statuses if c.id == quick]
    assert mine and mine[0].state == api_pb2.CONTAINER_EXITED and mine[0].exit_code == 3
    slow = container(cri, sid, pod, "slow", image, ["sleep", "1000"])
    expect(slow, api_pb2.CONTAINER_STARTED_EVENT)
    cri.rt.StopContainer(api_pb2.StopContainerRequest(container_id=slow, timeout=0))
    expect(slow, api_pb2.CONTAINER_STOPPED_EVENT)
    cri.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=slow))
    expect(slow, api_pb2.CONTAINER_DELETED_EVENT)
    cri.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sid))
    expect(sid, api_pb2.CONTAINER_STOPPED_EVENT)
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
    expect(quick, api_pb2.CONTAINER_DELETED_EVENT)
    expect(sid, api_pb2.CONTAINER_DELETED_EVENT)
    call.cancel()


def test_checkpoint_and_metrics_answer_as_containerd(cri: Cri) -> None:
    code, message = code_of(lambda: cri.rt.CheckpointContainer(
        api_pb2.CheckpointContainerRequest(container_id="x")))
    assert code == grpc.StatusCode.UNIMPLEMENTED and "checkpoint" in message
    # containerd 1.6's CRI has no metrics methods: UNIMPLEMENTED, which the kubelet
    # takes as "no CRI metrics".
    for call in (lambda: cri.rt.ListMetricDescriptors(api_pb2.ListMetricDescriptorsRequest()),
                 lambda: cri.rt.ListPodSandboxMetrics(api_pb2.ListPodSandboxMetricsRequest())):
        code, message = code_of(call)
        assert code == grpc.StatusCode.UNIMPLEMENTED and "ListPodSandboxStats" in message


def test_pull_image_with_auth_config(cri: Cri, cri_engine: Engine, busybox_layout: Path,
                                     tmp_path: Path) -> None:
    """The kubelet's image pull secrets: credentials for one pull, never stored."""
    import base64

    from tests.support.registry import LocalRegistry, htpasswd_line

    user, password = "kubelet", "pull-s3cret"
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(htpasswd_line(user, password))
    extra = f"auth:\n  htpasswd:\n    realm: muelle-cri\n    path: {htpasswd}\n"
    with LocalRegistry(tmp_path / "auth", extra_config=extra) as reg:
        ref = f"{reg.host}/private/busybox:1"
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                        f"--dest-creds={user}:{password}", f"oci:{busybox_layout}:1",
                        f"docker://{ref}"], check=True, capture_output=True)

        def pull(auth: api_pb2.AuthConfig | None) -> str:
            return cri.img.PullImage(api_pb2.PullImageRequest(
                image=api_pb2.ImageSpec(image=ref), auth=auth)).image_ref

        code, message = code_of(lambda: pull(None))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "unauthorized" in message.lower()
        code, _ = code_of(lambda: pull(api_pb2.AuthConfig(username=user, password="wrong")))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        # Credentials named for another registry are not sent to this one (containerd).
        code, _ = code_of(lambda: pull(api_pb2.AuthConfig(
            username=user, password=password, server_address="elsewhere.example:5000")))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        image_id = pull(api_pb2.AuthConfig(username=user, password=password,
                                           server_address=reg.host))
        assert image_id.startswith("sha256:")
        assert ref in cri.img.ImageStatus(api_pb2.ImageStatusRequest(
            image=api_pb2.ImageSpec(image=ref))).image.repo_tags
        cri.img.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=ref)))
        # A docker config.json's "auth" (base64 of user:password) works the same.
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        assert pull(api_pb2.AuthConfig(auth=token)) == image_id
        # Used for those pulls only: nothing stored for later ones, no login recorded.
        assert not (cri_engine.root / "registry" / "config.json").exists()
        cri.img.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=ref)))
        code, _ = code_of(lambda: pull(None))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        code, message = code_of(lambda: pull(api_pb2.AuthConfig(auth="not base64!")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "base64" in message


def test_runtime_handlers_pick_the_pods_runtime(cri: Cri, cri_engine: Engine, image: str,
                                                tmp_path: Path) -> None:
    """RuntimeClass: the pod's handler runs its infra container and its containers with
    that runtime; an unknown handler is refused with containerd's words."""
    import json

    names = [h.name for h in cri.rt.Status(api_pb2.StatusRequest()).runtime_handlers]
    assert names[0] == "" and {"runc", "crun", "muelle-runtime"} <= set(names)
    config = pod_config("handled", tmp_path)
    sid = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler="runc")).pod_sandbox_id
    cid = container(cri, sid, config, "app", image, ["sleep", "1000"])
    assert exec_sync(cri, cid, "true").exit_code == 0
    for obj in (sid, cid):
        detail = json.loads(cri_engine.cli("inspect", obj).stdout)[0]
        assert detail["HostConfig"]["Runtime"] == "runc", detail["HostConfig"]
    status = cri.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sid))
    assert status.status.runtime_handler == "runc"
    listed = cri.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(
        filter=api_pb2.PodSandboxFilter(id=sid))).items
    assert [p.runtime_handler for p in listed] == ["runc"]
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
    code, message = code_of(lambda: cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=pod_config("unhandled", tmp_path), runtime_handler="nosuch")))
    assert code == grpc.StatusCode.NOT_FOUND and "no runtime for 'nosuch'" in message


def _remove_cgroup_tree(top: str) -> None:
    """Remove the cgroup directories under /sys/fs/cgroup[/<controller>]/<top> that a
    pod's cgroup_parent made (deepest first), on v1 and v2."""
    root = Path("/sys/fs/cgroup")
    bases = [root] if (root / "cgroup.controllers").exists() else \
        [d for d in root.iterdir() if d.is_dir() and not d.is_symlink()]
    for base in bases:
        tree = base / top
        if tree.is_dir():
            for d in sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: -len(
                    p.parts)):
                _rmdir_when_free(d)
            _rmdir_when_free(tree)


def _rmdir_when_free(d: Path) -> None:
    """rmdir, waiting (bounded) while the shim's background delete empties the cgroup."""
    deadline = time.monotonic() + 20
    while True:
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return  # its owner (the runtime) removed it meanwhile
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_pod_shares_hostname_shm_and_cgroup_parent(cri: Cri, image: str,
                                                   tmp_path: Path) -> None:
    """The pod's containers share its UTS namespace (hostname) and its /dev/shm, and live
    in the cgroup the kubelet names (linux.cgroup_parent)."""
    top = f"muelle-cri-test-{os.getpid()}"
    config = pod_config("sharing", tmp_path)
    config.linux.cgroup_parent = f"/{top}/podsharing"
    sid = ""
    try:
        sid = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
        one = container(cri, sid, config, "one", image, ["sleep", "1000"])
        two = container(cri, sid, config, "two", image, ["sleep", "1000"])

        def ns(cid: str, kind: str) -> bytes:
            return exec_sync(cri, cid, "readlink", f"/proc/self/ns/{kind}").stdout

        assert ns(one, "uts") == ns(two, "uts")
        assert exec_sync(cri, one, "hostname").stdout.strip() == b"sharing-host"
        # POSIX shared memory (a file in /dev/shm) is the pod's, as its System V IPC.
        exec_sync(cri, one, "sh", "-c", "echo shared > /dev/shm/segment")
        assert exec_sync(cri, two, "cat", "/dev/shm/segment").stdout == b"shared\n"
        # The infra container and every container are under the cgroup parent.
        root = Path("/sys/fs/cgroup")
        base = root if (root / "cgroup.controllers").exists() else root / "pids"
        for cid in (sid, one, two):
            procs = (base / top / "podsharing" / cid / "cgroup.procs").read_text()
            assert procs.split(), f"no process of {cid[:12]} in its cgroup"
    finally:
        if sid:
            cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
        _remove_cgroup_tree(top)


def test_bidirectional_mount_propagation_with_runc(cri: Cri, image: str,
                                                   tmp_path: Path) -> None:
    """Kubernetes' mountPropagation Bidirectional, in a pod of runtime handler runc: what
    the container mounts under the volume reaches the host, and the reverse."""
    shared_dir = tmp_path / "shared"
    (shared_dir / "from-host").mkdir(parents=True)
    (shared_dir / "from-pod").mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "flag").write_text("x")
    made: list[str] = [str(shared_dir)]
    try:
        _mount("--bind", str(shared_dir), str(shared_dir))
        _mount("--make-rshared", str(shared_dir))
        pod = pod_config("bidir", tmp_path)
        sid = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
            config=pod, runtime_handler="runc")).pod_sandbox_id
        made.append(str(shared_dir / "from-pod"))  # the container mounts it: unmount it
        cid = cri.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=sid, sandbox_config=pod, config=api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="both"),
                image=api_pb2.ImageSpec(image=image), command=["sleep", "1000"],
                linux=api_pb2.LinuxContainerConfig(security_context=(
                    api_pb2.LinuxContainerSecurityContext(privileged=True))),
                mounts=[api_pb2.Mount(container_path="/data", host_path=str(shared_dir),
                                      propagation=api_pb2.PROPAGATION_BIDIRECTIONAL)]))
        ).container_id
        cri.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        assert exec_sync(cri, cid, "mount", "-t", "tmpfs", "podfs", "/data/from-pod"
                         ).exit_code == 0
        exec_sync(cri, cid, "sh", "-c", "echo made-in-pod > /data/from-pod/note")
        assert (shared_dir / "from-pod" / "note").read_text() == "made-in-pod\n"
        _mount("--bind", str(src), str(shared_dir / "from-host"))
        made.append(str(shared_dir / "from-host"))
        assert exec_sync(cri, cid, "cat", "/data/from-host/flag").stdout == b"x"
        cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
    finally:
        for path in reversed(made):
            subprocess.run(["umount", "-l", path], capture_output=True)
