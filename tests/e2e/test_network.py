"""Networking end to end: published ports, user networks by name, none/host, cleanup.

Traffic only goes to 127.0.0.1 or to the engine's own container namespaces.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from muelle.types.v1 import types_pb2

from clients.sdk.client import Client
from tests.support import network, required
from tests.support.engine import Engine
from tests.support.images import Entry, build_layout, busybox_layer, push_layout
from tests.support.registry import LocalRegistry

UDPECHO = Path(__file__).parent.parent / "support" / "data" / "udpecho.c"
HTTPD = "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def _until(check: Callable[[], bool], what: str, tries: int = 200) -> None:
    """Retry ``check`` (a container's server needs a moment to listen)."""
    for _ in range(tries):
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


@pytest.fixture(scope="module")
def net_image(engine: Engine, registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory,
              ) -> str:
    """busybox + a static UDP echo server (this busybox's nc has no -u), EXPOSE 80 5353/udp."""
    required.tool("gcc")  # builds the UDP echo server; make setup installs it
    tmp = tmp_path_factory.mktemp("netimg")
    binary = tmp / "udpecho"
    subprocess.run(["gcc", "-static", "-Os", "-o", str(binary), str(UDPECHO)], check=True)
    layer = busybox_layer([Entry("bin/udpecho", data=binary.read_bytes(), mode=0o755)])
    build_layout(tmp / "layout", [layer], tag="1",
                 config={"ExposedPorts": {"80/tcp": {}, "5353/udp": {}}})
    ref = f"{registry.host}/demo/netbox:1"
    push_layout(tmp / "layout", ref, tag="1")
    engine.cli("pull", ref)
    return ref


def _host_addresses() -> list[str]:
    """The host's IPv4 addresses other than loopback and muelle's bridges."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                         text=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()
            if line.split()[1] != "lo" and not line.split()[1].startswith("mu")]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_httpd_published_on_loopback_answers_the_host(engine: Engine, image: str) -> None:
    port = network.free_port()
    name = _name("web")
    engine.cli("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", image,
               "sh", "-c", HTTPD)
    try:
        _until(lambda: _get(f"http://127.0.0.1:{port}/") is not None,
               "httpd on the published port")
        assert (_get(f"http://127.0.0.1:{port}/") or "").startswith("hello-")
        assert engine.cli("port", name).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
        settings = json.loads(engine.cli("inspect", name).stdout)[0]["NetworkSettings"]
        assert settings["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1",
                                                 "HostPort": str(port)}]}
        assert settings["Networks"]["bridge"]["IPAddress"] == settings["IPAddress"]
        assert network.rules_mentioning([engine.bridge])
        engine.cli("stop", "-t", "1", name)
        # stopped: its DNAT rule and address are gone, the container stays
        assert not [r for _, r in network.rules_mentioning([engine.bridge]) if "DNAT" in r]
        assert _get(f"http://127.0.0.1:{port}/") is None
        engine.cli("start", name)  # wired again on start
        _until(lambda: _get(f"http://127.0.0.1:{port}/") is not None, "httpd after restart")
    finally:
        engine.cli("rm", "-f", name)
    assert network.container_leftovers(engine.root, engine.bridge) == []


def test_random_host_port_and_publish_all(engine: Engine, image: str) -> None:
    name = _name("rnd")
    engine.cli("run", "-d", "--name", name, "-p", "80", image, "sh", "-c", HTTPD)
    try:
        line = engine.cli("port", name, "80").stdout.strip()
        host_port = int(line.rsplit(":", 1)[1])
        assert line.startswith("0.0.0.0:") and host_port > 0
        _until(lambda: _get(f"http://127.0.0.1:{host_port}/") is not None, "random port")
        # published on every host address: the host's own (local delivery, nothing leaves)
        for addr in _host_addresses():
            assert _get(f"http://{addr}:{host_port}/") is not None, addr
    finally:
        engine.cli("rm", "-f", name)


def test_udp_publish(engine: Engine, net_image: str) -> None:
    port = network.free_port(socket.SOCK_DGRAM)
    name = _name("udp")
    engine.cli("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:5353/udp", net_image,
               "udpecho", "5353")
    try:
        assert engine.cli("port", name).stdout == f"5353/udp -> 127.0.0.1:{port}\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)

            def echoed() -> bool:
                s.sendto(b"ping-udp", ("127.0.0.1", port))
                try:
                    return s.recvfrom(100)[0] == b"ping-udp"
                except OSError:
                    return False
            _until(echoed, "the datagram echoed back from the container")
    finally:
        engine.cli("rm", "-f", name)


def test_publish_all_exposed_ports(engine: Engine, net_image: str) -> None:
    name = _name("all")
    engine.cli("run", "-d", "--name", name, "-P", net_image, "sh", "-c", HTTPD)
    try:
        lines = sorted(engine.cli("port", name).stdout.splitlines())
        assert [line.split(" -> ")[0] for line in lines] == ["5353/udp", "80/tcp"]
        tcp = int(lines[1].rsplit(":", 1)[1])
        _until(lambda: _get(f"http://127.0.0.1:{tcp}/") is not None, "the -P port")
    finally:
        engine.cli("rm", "-f", name)


def test_user_network_resolves_names_and_aliases(engine: Engine, image: str) -> None:
    net, web = _name("net"), _name("web")
    engine.cli("network", "create", net)
    try:
        engine.cli("run", "-d", "--name", web, "--network", net, "--network-alias", "www",
                   image, "sh", "-c", HTTPD)
        out = engine.cli("run", "--rm", "--network", net, image, "sh", "-c",
                         f"for i in $(seq 100); do wget -q -O - http://{web}/ && break; "
                         "sleep 0.1; done; wget -q -O - http://www/").stdout
        assert out.count("hello-") == 2, out
        info = json.loads(engine.cli("network", "inspect", net).stdout)[0]
        assert len(info["Containers"]) == 1 and info["IPAM"]["Config"][0]["Subnet"]
        rm = engine.cli("network", "rm", net, check=False)
        assert rm.returncode == 1 and "active endpoints" in rm.stderr
        # not on the default bridge: no names there, like docker0 (read, not resolved, so
        # that no DNS query leaves the host)
        hosts = engine.cli("run", "--rm", image, "cat", "/etc/hosts").stdout
        assert web not in hosts and "www" not in hosts
    finally:
        engine.cli("rm", "-f", web, check=False)
        engine.cli("network", "rm", net, check=False)
    assert net not in engine.cli("network", "ls").stdout


def test_a_link_alias_follows_the_container_it_names(engine: Engine, image: str) -> None:
    """--link NAME:ALIAS on a user network: the alias is in the linking container's
    /etc/hosts only, also for a container that joins after it (as dockerd's DNS does)."""
    net, early, db = _name("net"), _name("early"), _name("db")
    engine.cli("network", "create", net)
    try:
        engine.cli("run", "-d", "--name", early, "--network", net, "--link", f"{db}:database",
                   image, "sleep", "60")
        hosts = engine.cli("exec", early, "cat", "/etc/hosts").stdout
        assert "database" not in hosts
        engine.cli("run", "-d", "--name", db, "--network", net, image, "sleep", "60")
        ip = engine.cli("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}"
                        "{{end}}", db).stdout.strip()
        hosts = engine.cli("exec", early, "cat", "/etc/hosts").stdout
        assert [line.split()[0] for line in hosts.splitlines()
                if "database" in line.split()] == [ip]
        assert "database" not in engine.cli("exec", db, "cat", "/etc/hosts").stdout
        bad = engine.cli("run", "--rm", "--link", db, image, "true", check=False)
        assert bad.returncode == 125 and "legacy links" in bad.stderr
        # one more network, with a link given at connect (compose's other networks)
        engine.cli("network", "create", f"{net}-2")
        engine.cli("network", "connect", "--link", f"{db}:store", f"{net}-2", early)
        engine.cli("network", "connect", f"{net}-2", db)
        hosts = engine.cli("exec", early, "cat", "/etc/hosts").stdout
        assert sum("store" in line.split() for line in hosts.splitlines()) == 1
    finally:
        engine.cli("rm", "-f", early, db, check=False)
        engine.cli("network", "rm", net, f"{net}-2", check=False)


def test_connect_and_disconnect(engine: Engine, image: str) -> None:
    net, name = _name("net"), _name("c")
    octet = 100 + uuid.uuid4().int % 150  # runs side by side must not pick the same
    engine.cli("network", "create", "--subnet", f"10.99.{octet}.0/24", net)
    try:
        engine.cli("run", "-d", "--name", name, image, "sleep", "60")
        engine.cli("network", "connect", net, name)
        ifaces = engine.cli("run", "--rm", "--network", f"container:{name}", image,
                            "ls", "/sys/class/net").stdout.split()
        assert sorted(ifaces) == ["eth0", "eth1", "lo"]
        nets = json.loads(engine.cli("inspect", name).stdout)[0]["NetworkSettings"]["Networks"]
        assert sorted(nets) == ["bridge", net]
        assert nets[net]["IPAddress"].startswith(f"10.99.{octet}.")
        engine.cli("network", "disconnect", net, name)
        ifaces = engine.cli("run", "--rm", "--network", f"container:{name}", image,
                            "ls", "/sys/class/net").stdout.split()
        assert sorted(ifaces) == ["eth0", "lo"]
    finally:
        engine.cli("rm", "-f", name, check=False)
        engine.cli("network", "rm", net, check=False)


def test_container_mode_joins_a_none_container(engine: Engine, image: str) -> None:
    name = _name("lonely")
    engine.cli("run", "-d", "--name", name, "--network", "none", image, "sleep", "60")
    try:
        out = engine.cli("run", "--rm", "--network", f"container:{name}", image,
                         "ls", "/sys/class/net").stdout
        assert out.split() == ["lo"]
    finally:
        engine.cli("rm", "-f", name)
    gone = engine.cli("run", "--rm", "--network", f"container:{name}", image, "true",
                      check=False)
    assert gone.returncode == 125 and "No such container" in gone.stderr


def test_default_bridge_files_and_interfaces(engine: Engine, image: str) -> None:
    out = engine.cli("run", "--rm", "-h", "box", image, "sh", "-c",
                     "ls /sys/class/net; echo ---; cat /etc/hostname /etc/hosts; echo ---; "
                     "cat /etc/resolv.conf; echo ---; ip route 2>/dev/null || route -n").stdout
    ifaces, files, resolv, routes = out.split("---\n")
    assert sorted(ifaces.split()) == ["eth0", "lo"]
    assert files.startswith("box\n127.0.0.1\tlocalhost\n")
    assert files.strip().splitlines()[-1].endswith("\tbox")
    assert "nameserver 127." not in resolv and "nameserver" in resolv
    assert "default" in routes or "0.0.0.0" in routes


def test_bad_network_input_is_refused(engine: Engine, image: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    busy = listener.getsockname()[1]
    for args, message in (
        (["run", "--rm", "--network", "nosuch", image, "true"], "network nosuch not found"),
        (["run", "--rm", "-p", "80:80/sctp", image, "true"], "invalid protocol"),
        (["run", "--rm", "--network", "none", "-p", "80", image, "true"], "bridge network"),
        (["network", "create", "--subnet", "10.1.2.3/99", "x"], "invalid subnet"),
        (["network", "create", "bridge"], "reserved"),
        (["run", "--rm", "-p", "192.0.2.254:8080:80", image, "true"], "cannot assign"),
    ):
        proc = engine.cli(*args, check=False)
        assert proc.returncode != 0 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    # a port a host process listens on is not taken away from it
    proc = engine.cli("run", "--rm", "-p", f"127.0.0.1:{busy}:80", image, "true", check=False)
    listener.close()
    assert proc.returncode == 125 and "address already in use" in proc.stderr, proc.stderr
    assert network.container_leftovers(engine.root, engine.bridge) == []


@pytest.mark.timeout(600)
def test_create_rm_cycles_leave_nothing(engine: Engine, image: str) -> None:
    port = network.free_port()
    with Client(engine.host) as client:
        for _ in range(100):
            reply = client.create(image, ["true"], ports=[
                types_pb2.NetworkPort(container_port=80, host_port=port)])
            client.remove(reply.id, force=True)
    assert network.container_leftovers(engine.root, engine.bridge) == []


def _ip(engine: Engine, name: str, net: str) -> str:
    info = json.loads(engine.cli("inspect", name).stdout)[0]
    return str(info["NetworkSettings"]["Networks"][net]["IPAddress"])


def _probe(engine: Engine, image: str, net: str, targets: list[str]) -> set[str]:
    """From a container on ``net``: which of ``targets`` answer TCP (httpd) and ICMP.
    All probes at once; a dropped packet gets no answer, so each gives up after 2 s
    (`timeout`: this busybox's `wget -T` crashes)."""
    script = " ".join(
        f"(timeout 2 wget -q -O /dev/null http://{ip}/ && echo tcp:{ip}) & "
        f"(ping -c 1 -W 2 {ip} >/dev/null 2>&1 && echo icmp:{ip}) &" for ip in targets)
    out = engine.cli("run", "--rm", "--network", net, image, "sh", "-c",
                     f"{script} wait").stdout
    return set(out.split())


def test_networks_are_isolated_from_each_other(engine: Engine, image: str) -> None:
    """Like Docker's isolation stages: containers on two user networks and on the default
    bridge reach their own network's members over TCP and ICMP, and no other network's."""
    nets = {"a": _name("isoa"), "b": _name("isob"), "d": "bridge"}
    servers = {key: _name(f"srv{key}") for key in nets}
    bridges = []
    try:
        for key in ("a", "b"):
            engine.cli("network", "create", nets[key])
            info = json.loads(engine.cli("network", "inspect", nets[key]).stdout)[0]
            bridges.append(info["Options"]["com.docker.network.bridge.name"])
        for key, net in nets.items():
            engine.cli("run", "-d", "--name", servers[key], "--network", net, image,
                       "sh", "-c", HTTPD)
        ips = {key: _ip(engine, servers[key], net) for key, net in nets.items()}
        for key, net in nets.items():  # each server answers on its own network
            ip = ips[key]
            _until(lambda: f"tcp:{ip}" in _probe(engine, image, net, [ip]),  # noqa: B023
                   f"httpd on {net}", tries=40)
        for key, net in nets.items():
            got = _probe(engine, image, net, list(ips.values()))
            assert got == {f"tcp:{ips[key]}", f"icmp:{ips[key]}"}, (net, ips, got)
    finally:
        engine.cli("rm", "-f", *servers.values(), check=False)
        for key in ("a", "b"):
            engine.cli("network", "rm", nets[key], check=False)
    # the networks' rules went with them
    assert network.rules_mentioning(bridges) == []


def test_a_container_that_exits_gives_its_network_back(engine: Engine, image: str) -> None:
    """Like Docker: veth, address lease, published port and netns go when the container
    exits by itself, not at `rm`; `start` and `restart` wire it again."""
    name, port = _name("quits"), network.free_port()
    # runs until told to stop (a file), so its exit is its own, not a stop's
    script = "rm -f /go; while [ ! -e /go ]; do sleep 0.05; done"
    engine.cli("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", image,
               "sh", "-c", script)
    try:
        for again in ("start", "restart", ""):
            wired = network.container_leftovers(engine.root, engine.bridge)
            assert len(wired) == 3, wired  # a veth, a DNAT rule, a lease
            ip = _ip(engine, name, "bridge")
            assert ip
            engine.cli("exec", name, "touch", "/go")
            assert engine.cli("wait", name).stdout.strip() == "0"
            _until(lambda: network.container_leftovers(engine.root, engine.bridge) == [],
                   "the network of an exited container to be released")
            info = json.loads(engine.cli("inspect", name).stdout)[0]
            assert info["State"]["Status"] == "exited"
            if again:
                engine.cli(again, name)
    finally:
        engine.cli("rm", "-f", name, check=False)
