"""The shim's networking across a shim restart, with runc and crun joining the pinned netns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest
from muelle.shim.v1 import shim_pb2 as pb
from muelle.types.v1 import types_pb2

from tests.integration.shim.conftest import ShimProcess
from tests.support import network

HTTPD = "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 80 -h /www"


def _get(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return str(resp.read().decode())
    except OSError:
        return None


def _answers(port: int) -> bool:
    for _ in range(200):
        if _get(port) == "hi\n":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("runtime", ["runc", "crun", "muelle"])
def test_published_port_and_leases_survive_a_shim_restart(shim: ShimProcess,
                                                          runtime: str) -> None:
    port = network.free_port()
    cid = shim.create(["sh", "-c", HTTPD], runtime=runtime, hostname="web", ports=[
        types_pb2.NetworkPort(container_port=80, host_ip="127.0.0.1", host_port=port)])
    shim.stub.Start(pb.StartRequest(id=cid))
    assert _answers(port), shim.logs()
    state = shim.stub.State(pb.StateRequest(id=cid))
    assert state.network_mode == "bridge" and state.networks[0].interface == "eth0"
    ip = state.networks[0].ip_address
    assert [(p.host_port, p.container_port) for p in state.ports] == [(port, 80)]

    shim.kill9()
    shim.start()
    assert _answers(port)  # the kernel kept the wiring; the files kept the state
    other = shim.create(["true"], runtime=runtime)
    other_ip = shim.stub.State(pb.StateRequest(id=other)).networks[0].ip_address
    assert other_ip != ip  # the restarted shim still knows the lease
    leases = network.leases(shim.dir / "root")
    assert leases == {ip: cid, other_ip: other}
    hosts = (shim.dir / "root" / "shim" / "containers" / cid / "hosts").read_text()
    assert f"{ip}\tweb\n" in hosts
    config = json.loads((shim.dir / "root" / "shim" / "containers" / cid /
                         "config.json").read_text())
    assert {"type": "network", "path": str(shim.dir / "root" / "shim" / "containers" /
                                           cid / "netns")} in config["linux"]["namespaces"]

    for c in (cid, other):
        shim.stub.Delete(pb.DeleteRequest(id=c, force=True))
    assert _get(port) is None
    assert network.container_leftovers(shim.dir / "root", shim.bridge) == []


def test_start_after_the_kernel_forgot_the_wiring(shim: ShimProcess) -> None:
    """As after a reboot: pin, veth, bridge and rules gone, network.json still says wired."""
    port = network.free_port()
    cid = shim.create(["sh", "-c", HTTPD], ports=[
        types_pb2.NetworkPort(container_port=80, host_ip="127.0.0.1", host_port=port)])
    shim.stub.Start(pb.StartRequest(id=cid))
    assert _answers(port)
    shim.stub.Kill(pb.KillRequest(id=cid, signal="KILL"))
    shim.stub.Wait(pb.WaitRequest(id=cid))  # exited by itself: still wired
    pin = shim.dir / "root" / "shim" / "containers" / cid / "netns"
    subprocess.run(["umount", "-l", str(pin)], check=True)
    assert network.sweep(shim.dir / "root", shim.bridge)  # bridge, veth and rules go
    shim.stub.Start(pb.StartRequest(id=cid))
    assert _answers(port)
    assert list(network.leases(shim.dir / "root").values()) == [cid]
    shim.stub.Delete(pb.DeleteRequest(id=cid, force=True))
    assert network.container_leftovers(shim.dir / "root", shim.bridge) == []


def test_a_restarted_shim_adds_the_rules_its_bridge_lacks(shim: ShimProcess) -> None:
    """A bridge made by a shim from before a rule existed (the isolation stages) gets it
    when the shim starts again."""
    cid = shim.create(["sleep", "60"])
    shim.stub.Start(pb.StartRequest(id=cid))
    isolation = [line for _, line in network.rules_mentioning([shim.bridge])
                 if "MUELLE-ISOLATION" in line]
    assert len(isolation) == 2, isolation
    for line in isolation:
        subprocess.run(["iptables", "-w", "-t", "filter", "-D", *line.split()[1:]], check=True)
    shim.kill9()
    shim.start()
    again = [line for _, line in network.rules_mentioning([shim.bridge])
             if "MUELLE-ISOLATION" in line]
    assert sorted(again) == sorted(isolation)
    shim.stub.Delete(pb.DeleteRequest(id=cid, force=True))


def test_a_run_that_ended_while_the_shim_was_down_gives_its_network_back(
        shim: ShimProcess) -> None:
    cid = shim.create(["sleep", "60"])
    shim.stub.Start(pb.StartRequest(id=cid))
    pid = shim.stub.State(pb.StateRequest(id=cid)).pid
    assert len(network.container_leftovers(shim.dir / "root", shim.bridge)) == 2  # veth, lease
    shim.kill9()
    os.kill(pid, signal.SIGKILL)  # its monitor records the exit; no shim sees it
    status = shim.dir / "root" / "shim" / "containers" / cid / "status.json"
    for _ in range(200):
        if status.exists():
            break
        time.sleep(0.05)
    shim.start()  # restore: it ended, so its network goes
    assert network.container_leftovers(shim.dir / "root", shim.bridge) == []
    shim.stub.Start(pb.StartRequest(id=cid))  # and comes back with a new run
    assert len(network.container_leftovers(shim.dir / "root", shim.bridge)) == 2
    shim.stub.Delete(pb.DeleteRequest(id=cid, force=True))
