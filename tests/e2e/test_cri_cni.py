"""muelle-cri with `[cri] network = "cni"` (services/cri/cni.py): pods networked by Debian's
containernetworking-plugins (bridge + host-local) from a CNI config dir, as containerd
does, driven through the CRI socket as the kubelet would.

The network is this test's own: a bridge of a unique name on a private subnet, the
address store in a temporary directory, no IP masquerade and no portmap (whose host
iptables chains outlive their last rule); the bridge is deleted at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s.cri.v1 import api_pb2

from tests.e2e.test_cri import (
    CRI_ENGINE,
    Cri,
    container,
    exec_sync,
    pod_config,
    until,
)
from tests.support.engine import Engine

pytestmark = pytest.mark.root

BRIDGE = f"mucni{os.getpid() % 100000}"
SUBNET_PREFIX = f"10.242.{os.getpid() % 250}."


@pytest.fixture(scope="module")
def cni_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("cni")
    conf, ipam = base / "net.d", base / "ipam"
    conf.mkdir()
    (conf / "10-test.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "muelle-cri-test", "plugins": [{
            "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
            "ipam": {"type": "host-local", "dataDir": str(ipam),
                     "ranges": [[{"subnet": SUBNET_PREFIX + "0/24"}]]}}]}))
    try:
        yield conf, ipam
    finally:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)


@pytest.fixture(scope="module")
def cni_cri(busybox_ref: str, cni_dirs: tuple[Path, Path]) -> Iterator[Cri]:
    extra = (f'[cri]\nsandbox_image = "{busybox_ref}"\n'
             'sandbox_command = ["sleep", "2147483647"]\n'
             f'network = "cni"\ncni_conf_dir = "{cni_dirs[0]}"\n')
    with Engine(services=CRI_ENGINE, extra_config=extra) as engine:
        client = Cri(engine)
        yield client
        for pod in client.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
            client.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
        client.channel.close()


def test_pods_on_a_cni_network_reach_each_other(cni_cri: Cri, busybox_ref: str,
                                                cni_dirs: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    cri, ipam = cni_cri, cni_dirs[1]
    conditions = cri.rt.Status(api_pb2.StatusRequest()).status.conditions
    assert {(c.type, c.status) for c in conditions} >= {("NetworkReady", True)}
    image = cri.img.PullImage(api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image=busybox_ref))).image_ref
    pods = {}
    for name in ("server", "client"):
        config = pod_config(name, tmp_path)
        sid = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
        ip = cri.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
            pod_sandbox_id=sid)).status.network.ip
        assert ip.startswith(SUBNET_PREFIX), ip
        pods[name] = (sid, config, ip)
    sid, config, server_ip = pods["server"]
    web = container(cri, sid, config, "web", image, [
        "sh", "-c", "echo over-cni > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"])
    # The pod's containers are in the namespace CNI set up: eth0 has the pod's address.
    assert f"inet {server_ip}/24" in exec_sync(cri, web, "ip", "addr", "show", "eth0"
                                               ).stdout.decode()
    csid, cconfig, _ = pods["client"]
    client = container(cri, csid, cconfig, "wget", image, ["sleep", "1000"])
    got = until(lambda: exec_sync(cri, client, "wget", "-qO-", f"http://{server_ip}:8080/"),
                lambda r: r.exit_code == 0, "wget across pods on the CNI bridge")
    assert got.stdout == b"over-cni\n"
    # Stopping the pod takes it off the network: host-local frees its address.
    assert (ipam / "muelle-cri-test" / server_ip).exists()
    cri.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sid))
    assert not (ipam / "muelle-cri-test" / server_ip).exists()
    for pod_id, _, _ in pods.values():
        cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    # Removed without a stop, the client pod's address is freed too.
    assert not [p for p in (ipam / "muelle-cri-test").iterdir()
                if p.name.startswith(SUBNET_PREFIX)]
