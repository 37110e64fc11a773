"""Pods on a CNI network: muelle-cri with ``[cri] cni_conf_dir`` runs Debian's
containernetworking-plugins (bridge + host-local + portmap + firewall + loopback) per pod, as
containerd does (services/cri/cni.py).

The network is the test's own: a conflist in a tmp dir with a bridge name and private
subnet of its own, host-local's leases in a tmp dir. What the plugins leave on the host by
design (the bridge; the CNI-* chains of portmap and firewall that were not there before) is
removed at the end, and what a pod was given (veth, DNAT chains, lease, namespace pin) must
be gone after RemovePodSandbox.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from k8s.cri.v1 import api_pb2

from services.cri.cni import Cni
from tests.e2e.test_cri import (
    CRI_ENGINE,
    Cri,
    code_of,
    container,
    exec_sync,
    pod_config,
    status,
    until,
)
from tests.support import hostcheck
from tests.support.engine import Engine

pytestmark = pytest.mark.root

def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.200.0.0/16 that no route of the host overlaps."""
    routes = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"],
                            capture_output=True, text=True, check=True).stdout
    taken = []
    for route in json.loads(routes or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            taken.append(ipaddress.ip_network(dst, strict=False))
    for third in range(256):
        net = ipaddress.IPv4Network(f"10.200.{(third * 37 + os.getpid()) % 256}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("no free /24 in 10.200.0.0/16")


def _cni_chains() -> set[tuple[str, str, str]]:
    """(tool, table, chain) of every CNI-* chain on the host."""
    out = set()
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat"):
            text = subprocess.run([f"{tool}-save", "-t", table], capture_output=True,
                                  text=True).stdout
            out |= {(tool, table, line[1:].split()[0]) for line in text.splitlines()
                    if line.startswith(":CNI-")}
    return out


def _drop_chains(chains: set[tuple[str, str, str]]) -> None:
    """Jumps to these chains, then the chains: what the plugins keep for the next pod
    (portmap's CNI-HOSTPORT-*, firewall's CNI-FORWARD and CNI-ADMIN) or a failed DEL left."""
    for tool, table in {(t, tb) for t, tb, _ in chains}:
        names = {c for t, tb, c in chains if (t, tb) == (tool, table)}
        text = subprocess.run([f"{tool}-save", "-t", table], capture_output=True,
                              text=True).stdout
        for line in text.splitlines():
            parts = shlex.split(line)  # comments are quoted
            if line.startswith("-A ") and parts[1] not in names and any(
                    f"-j {c}" in line for c in names):
                subprocess.run([tool, "-t", table, "-D", *parts[1:]], capture_output=True)
        for verb in ("-F", "-X"):
            for name in names:
                subprocess.run([tool, "-t", table, verb, name], capture_output=True)


def _rules(table: str = "nat") -> str:
    return subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True,
                          check=True).stdout


class Network:
    def __init__(self, base: Path) -> None:
        self.name = f"mucni-{uuid.uuid4().hex[:8]}"
        self.bridge = f"mus{uuid.uuid4().hex[:8]}"  # the suite's pattern: hostcheck knows it
        self.subnet = _free_subnet()
        self.conf_dir = base / "net.d"
        self.leases = base / "ipam"
        self.conf_dir.mkdir()
        self.conflist = self.conf_dir / "10-test.conflist"
        self.conflist.write_text(json.dumps({
            "cniVersion": "1.0.0", "name": self.name,
            "plugins": [
                {"type": "bridge", "bridge": self.bridge, "isGateway": True,
                 "ipMasq": False, "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": str(self.leases),
                          "ranges": [[{"subnet": str(self.subnet)}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
                # Accepts the pods' forwarded traffic where FORWARD's policy is DROP
                # (Docker's), as the shim's MUELLE-FORWARD does for its bridges.
                {"type": "firewall", "backend": "iptables"},
                {"type": "loopback"},
            ]}))

    def leased(self) -> list[str]:
        """host-local's lease files (one per address in use, named by it)."""
        d = self.leases / self.name
        return sorted(p.name for p in d.iterdir() if p.name[0].isdigit()) if d.is_dir() else []


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    if not os.path.exists("/usr/lib/cni/bridge"):
        pytest.fail("containernetworking-plugins is not installed (make setup)")
    net = Network(tmp_path_factory.mktemp("cni"))
    hostcheck.claim(net.bridge, net.name)
    chains_before = _cni_chains()
    try:
        yield net
    finally:
        subprocess.run(["ip", "link", "del", net.bridge], capture_output=True)
        _drop_chains(_cni_chains() - chains_before)
        shutil.rmtree(net.leases, ignore_errors=True)


@pytest.fixture(scope="module")
def cni_engine(busybox_ref: str, network: Network) -> Iterator[Engine]:
    extra = (f'[cri]\nsandbox_image = "{busybox_ref}"\n'
             'sandbox_command = ["sleep", "2147483647"]\n'
             f'cni_conf_dir = "{network.conf_dir}"\n')
    engine = Engine(services=CRI_ENGINE, extra_config=extra)
    with engine:
        try:
            yield engine
        finally:
            # A pod that RemovePodSandbox did not take off the network (a failed test,
            # a muelle-cri that died): DEL it with the same code, so nothing outlives us.
            leftover = Cni(network.conf_dir, "/usr/lib/cni", engine.cfg.state_dir("cri"),
                           engine.run)
            for record in sorted(leftover.results.glob("*.json")):
                with contextlib.suppress(Exception):  # the test's failure is the news
                    leftover.detach(record.stem, force=True)


@pytest.fixture(scope="module")
def cri(cni_engine: Engine) -> Iterator[Cri]:
    client = Cri(cni_engine)
    yield client
    for pod in client.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
        client.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    client.channel.close()


@pytest.fixture(scope="module")
def image(cri: Cri, busybox_ref: str) -> str:
    return cri.img.PullImage(api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image=busybox_ref))).image_ref


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pod_status(cri: Cri, sid: str) -> api_pb2.PodSandboxStatus:
    return cri.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sid)).status


def _remove(cri: Cri, sid: str) -> None:
    cri.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sid))
    cri.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sid))  # kubelet retry
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_pods_on_a_cni_bridge_with_a_host_port(cri: Cri, image: str, network: Network,
                                               cni_engine: Engine, tmp_path: Path) -> None:
    conditions = cri.rt.Status(api_pb2.StatusRequest()).status.conditions
    assert {c.type: c.status for c in conditions}["NetworkReady"]
    host_port = _free_port()
    config_a = pod_config("cni-a", tmp_path)
    config_a.port_mappings.append(api_pb2.PortMapping(
        protocol=api_pb2.TCP, container_port=8080, host_port=host_port))
    config_a.dns_config.servers.append("10.0.0.53")
    a = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config_a)).pod_sandbox_id
    ip_a = _pod_status(cri, a).network.ip
    assert ipaddress.ip_address(ip_a) in network.subnet
    assert network.leased() == [ip_a]
    server = container(cri, a, config_a, "server", image, [
        "sh", "-c", "echo from-pod-a > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"])
    client = container(cri, a, config_a, "client", image, ["sleep", "1000"])
    until(lambda: status(cri, server).state, lambda s: s == api_pb2.CONTAINER_RUNNING,
          "server running")

    # The pod's two containers share the namespace the plugins wired: localhost, eth0 with
    # the pod's address, the bridge's gateway as default route, the sandbox's DNS.
    got = until(lambda: exec_sync(cri, client, "wget", "-qO-", "http://127.0.0.1:8080/"),
                lambda r: r.exit_code == 0, "wget on localhost")
    assert got.stdout == b"from-pod-a\n"
    addr = exec_sync(cri, client, "ip", "-4", "addr", "show", "eth0").stdout.decode()
    assert f"inet {ip_a}/{network.subnet.prefixlen}" in addr
    route = exec_sync(cri, client, "ip", "route").stdout.decode()
    assert f"default via {next(network.subnet.hosts())} dev eth0" in route
    resolv = exec_sync(cri, client, "cat", "/etc/resolv.conf").stdout.decode()
    assert "nameserver 10.0.0.53" in resolv

    # A second pod reaches the first by its pod IP, across the bridge.
    config_b = pod_config("cni-b", tmp_path)
    b = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config_b)).pod_sandbox_id
    ip_b = _pod_status(cri, b).network.ip
    assert ip_b != ip_a and ipaddress.ip_address(ip_b) in network.subnet
    other = container(cri, b, config_b, "other", image, ["sleep", "1000"])
    got = until(lambda: exec_sync(cri, other, "wget", "-qO-", f"http://{ip_a}:8080/"),
                lambda r: r.exit_code == 0, "wget to pod a's IP")
    assert got.stdout == b"from-pod-a\n"

    # The hostPort, published by portmap, from the host's loopback (its OUTPUT DNAT and
    # route_localnet on the bridge).
    with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=10) as reply:
        assert reply.read() == b"from-pod-a\n"
    assert ip_a in _rules("nat") and ip_a in _rules("filter")  # portmap's, firewall's

    for sid in (a, b):
        _remove(cri, sid)
    # Nothing of the pods is left: leases, DNAT rules, veths, namespace pins, records.
    assert network.leased() == []
    assert ip_a not in _rules("nat") and str(host_port) not in _rules("nat")
    assert ip_a not in _rules("filter") and ip_b not in _rules("filter")
    links = subprocess.run(["ip", "-o", "link", "show", "master", network.bridge],
                           capture_output=True, text=True).stdout
    assert links == ""
    assert not list((cni_engine.run / "cri" / "netns").iterdir())
    assert not list((cni_engine.cfg.state_dir("cri") / "cni").glob("*.json"))


def test_stopped_pod_leaves_the_network_at_once(cri: Cri, image: str, network: Network,
                                                tmp_path: Path) -> None:
    config = pod_config("cni-stop", tmp_path)
    sid = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    assert network.leased() == [_pod_status(cri, sid).network.ip]
    cri.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sid))
    # containerd's order: the network goes at stop, the record stays until remove.
    st = _pod_status(cri, sid)
    assert st.state == api_pb2.SANDBOX_NOTREADY and not st.network.ip
    assert network.leased() == []
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_a_bad_network_config_fails_the_pod_cleanly(cri: Cri, image: str, network: Network,
                                                    tmp_path: Path) -> None:
    # Lexically first, so it is the network: a plugin that does not exist.
    bad = network.conf_dir / "00-bad.conflist"
    bad.write_text(json.dumps({"cniVersion": "1.0.0", "name": "bad",
                               "plugins": [{"type": "loopback"}, {"type": "no-such-plugin"}]}))
    try:
        code, details = code_of(lambda: cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
            config=pod_config("cni-bad", tmp_path))))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "CNI plugin 'no-such-plugin' not found in /usr/lib/cni" in details
        bad.write_text("{not json")
        conditions = cri.rt.Status(api_pb2.StatusRequest()).status.conditions
        net = next(c for c in conditions if c.type == "NetworkReady")
        assert not net.status and net.reason == "NetworkPluginNotReady"
        assert "00-bad.conflist: not JSON" in net.message
        code, details = code_of(lambda: cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
            config=pod_config("cni-bad", tmp_path))))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "not JSON" in details
    finally:
        bad.unlink()
    # The failed pods left no sandbox, no lease, no pin.
    assert not cri.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    assert network.leased() == []


def test_remove_of_a_pod_whose_infra_container_is_gone_still_leaves_the_network(
        cri: Cri, image: str, network: Network, cni_engine: Engine, tmp_path: Path) -> None:
    sid = cri.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=pod_config("cni-orphan", tmp_path))).pod_sandbox_id
    cni_engine.cli("rm", "-f", sid)  # behind the CRI's back
    assert len(network.leased()) == 1
    code, _ = code_of(lambda: _pod_status(cri, sid))
    assert code == grpc.StatusCode.NOT_FOUND
    cri.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert network.leased() == []
    assert not list((cni_engine.run / "cri" / "netns").iterdir())
