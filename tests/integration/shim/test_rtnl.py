"""services/shim/network/rtnl.py against the kernel, in throwaway network namespaces."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from services.runtime import linux
from services.shim.network import links, netns, rtnl

pytestmark = pytest.mark.root
T = TypeVar("T")


def in_new_netns(fn: Callable[[], T]) -> T:
    """``fn()`` on a thread in a network namespace of its own, gone when it ends."""
    out: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            linux.unshare(linux.CLONE_NEWNET)
            out.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return out[0]


@pytest.fixture
def peer_ns(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "peer")
    netns.create(path)
    yield path
    netns.remove(path)


def _ip(netns_path: str | None, *args: str) -> str:
    prefix = ["nsenter", f"--net={netns_path}"] if netns_path else []
    return subprocess.run([*prefix, "ip", *args], capture_output=True, text=True,
                          check=True).stdout


def test_veth_address_route_and_delete(peer_ns: str) -> None:
    def scenario() -> tuple[str, str, bool, bool]:
        with rtnl.Socket() as sock:
            sock.request(rtnl.RTM_NEWLINK, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL,
                         rtnl.ifinfo() + rtnl.attr(rtnl.IFLA_IFNAME, b"br-t\0") +
                         rtnl.attr(rtnl.IFLA_LINKINFO,
                                   rtnl.attr(rtnl.IFLA_INFO_KIND, b"bridge\0")))
            bridge = rtnl.index("br-t")
            assert bridge is not None
            fd = os.open(peer_ns, os.O_RDONLY)
            try:
                sock.add_veth("vh-t", "eth0", fd, bridge)
                with pytest.raises(OSError) as exists:
                    sock.add_veth("vh-t", "eth0", fd, bridge)
            finally:
                os.close(fd)
            assert exists.value.errno == errno.EEXIST
            host_side = _ip(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net",
                            "-o", "link", "show", "vh-t")
            gone = sock.delete_link("vh-t")
            again = sock.delete_link("vh-t")
        return host_side, _ip(peer_ns, "-o", "link"), gone, again

    host_side, peer_links, gone, again = in_new_netns(scenario)
    assert "master br-t" in host_side and "UP" in host_side
    assert "eth0" not in peer_links  # the pair went with its host end
    assert gone and not again


def _bridge_and_veth(sock: rtnl.Socket, peer_ns: str, host: str = "vh-t",
                     inner: str = "") -> None:
    """Bridge br-t (made once, up) and a veth: ``host`` on it, ``inner`` in ``peer_ns``."""
    if rtnl.index("br-t") is None:
        sock.request(rtnl.RTM_NEWLINK, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL,
                     rtnl.ifinfo(up=True) + rtnl.attr(rtnl.IFLA_IFNAME, b"br-t\0") +
                     rtnl.attr(rtnl.IFLA_LINKINFO,
                               rtnl.attr(rtnl.IFLA_INFO_KIND, b"bridge\0")))
    fd = os.open(peer_ns, os.O_RDONLY)
    try:
        sock.add_veth(host, inner or f"e-{host}", fd, rtnl.index("br-t") or 0)
    finally:
        os.close(fd)


def test_configure_inner_sets_lo_address_and_default_route(peer_ns: str) -> None:
    def scenario() -> tuple[str, str, list[str]]:
        with rtnl.Socket() as sock:
            _bridge_and_veth(sock, peer_ns, "vh-t", "eth0")
        # while this thread's namespace (the pair's host end) lives
        links.configure_inner(peer_ns, "eth0", "10.250.0.2", 24, "10.250.0.1")
        return (_ip(peer_ns, "-o", "addr"), _ip(peer_ns, "route", "show", "default"),
                links.names_in(peer_ns))

    addrs, route, names = in_new_netns(scenario)
    assert "inet 127.0.0.1/8" in addrs and "inet 10.250.0.2/24" in addrs
    assert route.startswith("default via 10.250.0.1 dev eth0")
    assert names == ["lo", "eth0"]


def test_primary_ipv4_and_index_of_missing_links() -> None:
    assert rtnl.index("no-such-link0") is None
    assert rtnl.primary_ipv4("no-such-link0") is None
    assert rtnl.primary_ipv4("lo") == "127.0.0.1"
    assert links.has_address("lo", "127.0.0.1")
    assert not links.has_address("no-such-link0", "10.0.0.1")


def _here() -> str:
    return f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net"


def test_detach_takes_a_veth_off_its_bridge_and_down(peer_ns: str) -> None:
    def scenario() -> tuple[str, str, bool, bool]:
        with rtnl.Socket() as sock:
            _bridge_and_veth(sock, peer_ns)
        before = _ip(_here(), "-o", "link", "show", "vh-t")
        detached = links.detach("vh-t")
        after = _ip(_here(), "-o", "link", "show", "vh-t")
        return before, after, detached, links.detach("no-such-link0")

    before, after, detached, missing = in_new_netns(scenario)
    assert "master br-t" in before and ",UP" in before
    assert detached and "master" not in after and ",UP" not in after
    assert not missing


def test_retiring_deletes_on_a_thread_and_forgets_once_gone(peer_ns: str,
                                                           tmp_path: Path) -> None:
    from services.shim.network.retire import Retiring

    record = tmp_path / "retiring"

    def scenario() -> tuple[str, bool, list[str], bool]:
        with rtnl.Socket() as sock:
            _bridge_and_veth(sock, peer_ns, "vh-a")
            _bridge_and_veth(sock, peer_ns, "vh-b")
        retiring = Retiring(record)
        retiring.retire("vh-a")
        off_bridge = _ip(_here(), "-o", "link", "show", "master", "br-t")
        retiring.settle("vh-a")
        gone = rtnl.index("vh-a") is None
        # A shim killed before its delete ran: the record is there, the next one deletes.
        (record / "vh-b").touch()
        Retiring(record)
        return off_bridge, gone, sorted(p.name for p in record.iterdir()), \
            rtnl.index("vh-b") is None

    off_bridge, gone, records, left_deleted = in_new_netns(scenario)
    assert "vh-a" not in off_bridge and "vh-b" in off_bridge
    assert gone and left_deleted and records == []


def test_bridge_ports_addresses_and_routes_from_dumps(peer_ns: str) -> None:
    """What pyroute2 did before rtnl.py's dumps: ensure_bridge (twice: idempotent),
    has_address beyond the primary address, bridge_ports, and the routes subnets.py
    avoids, compared with what `ip` reads."""
    from services.shim.network import subnets

    def scenario() -> tuple[list[str], bool, bool, list[str], str, list[str], str]:
        links.ensure_bridge("br-d", "10.251.0.1", 24)
        links.ensure_bridge("br-d", "10.251.0.1", 24)
        with rtnl.Socket() as sock:
            sock.add_address(rtnl.index("br-d") or 0, "10.252.0.1", 16)  # a second one
            fd = os.open(peer_ns, os.O_RDONLY)
            try:
                sock.add_veth("vh-d1", "e1", fd, rtnl.index("br-d") or 0)
                sock.add_veth("vh-d2", "e2", fd, rtnl.index("br-d") or 0)
            finally:
                os.close(fd)
        routes = sorted(str(n) for n in subnets.host_routes())
        return (sorted(links.bridge_ports("br-d")), links.has_address("br-d", "10.252.0.1"),
                links.has_address("br-d", "10.253.0.1"), routes,
                _ip(_here(), "-o", "-4", "addr", "show", "br-d"),
                sorted(links.names_in(peer_ns)),
                _ip(_here(), "route", "show", "table", "all"))

    ports, second, absent, routes, addrs, inner, ip_routes = in_new_netns(scenario)
    assert ports == ["vh-d1", "vh-d2"]
    assert second and not absent
    assert addrs.count("inet 10.251.0.1/24") == 1  # the second ensure added nothing
    assert inner == ["e1", "e2", "lo"]
    assert "10.251.0.0/24" in routes and "10.252.0.0/16" in routes  # main table
    assert "10.251.0.1/32" in routes  # the local table's, as `ip route show table all`
    assert "local 10.251.0.1 dev br-d table local" in ip_routes
