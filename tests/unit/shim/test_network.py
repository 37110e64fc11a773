"""The network core's pure parts: leases, port checks, resolv.conf and hosts, definitions."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from services.shim.network import files, ports, rules, subnets
from services.shim.network.defs import Defs, Network, check_name
from services.shim.network.ipam import Pool
from services.shim.network.ports import Port
from vocab.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)


def test_leases_persist_and_are_released(tmp_path: Path) -> None:
    pool = Pool(tmp_path / "n.json", "10.88.7.0/29", "10.88.7.1")
    a = pool.allocate("a")
    assert a == "10.88.7.2" and pool.allocate("a") == a  # idempotent per owner
    # a second Pool over the same file (a restarted shim) sees the lease
    again = Pool(tmp_path / "n.json", "10.88.7.0/29", "10.88.7.1")
    assert again.allocate("b") == "10.88.7.3"
    assert again.leases() == {"10.88.7.2": "a", "10.88.7.3": "b"}
    again.release("a")
    assert pool.allocate("c") == "10.88.7.2"  # freed addresses are reused
    for owner in ("b", "c"):
        pool.release(owner)
    assert not (tmp_path / "n.json").exists()  # no lease, no file


def test_pool_exhaustion_and_wanted_addresses(tmp_path: Path) -> None:
    pool = Pool(tmp_path / "n.json", "10.88.7.0/30", "10.88.7.1")
    assert pool.allocate("a") == "10.88.7.2"
    with pytest.raises(FailedPrecondition, match="no free address"):
        pool.allocate("b")
    pool.release("a")
    for bad in ("10.88.7.1", "10.88.7.3", "10.9.9.9"):
        with pytest.raises(FailedPrecondition):
            pool.allocate("x", bad)


@pytest.mark.parametrize(("port", "want"), [
    (Port(80), Port(80, "tcp", "", 0)),
    (Port(53, "UDP", "0.0.0.0", 5353), Port(53, "udp", "", 5353)),
    (Port(80, "tcp", "127.0.0.1", 8080), Port(80, "tcp", "127.0.0.1", 8080)),
])
def test_port_checks(port: Port, want: Port) -> None:
    assert ports.check(port) == want


@pytest.mark.parametrize("port", [
    Port(0), Port(70000), Port(80, "sctp"), Port(80, "tcp", "nope"), Port(80, "tcp", "::1"),
    Port(80, "tcp", "", 70000),
])
def test_bad_ports(port: Port) -> None:
    with pytest.raises(InvalidArgument):
        ports.check(port)


def test_dnat_rule_names_the_bridge_and_the_container() -> None:
    rule = ports.dnat_rule(Port(80, "tcp", "127.0.0.1", 8080), "mu0", "10.88.0.2")
    assert rule == ["-p", "tcp", "-d", "127.0.0.1/32", "!", "-i", "mu0", "-m", "tcp",
                    "--dport", "8080", "-j", "DNAT", "--to-destination", "10.88.0.2:80"]


def test_resolv_conf_drops_loopback_nameservers() -> None:
    host = "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.53\noptions edns0\n"
    assert files.resolv_conf(host) == \
        "search example.org\nnameserver 192.0.2.53\noptions edns0\n"
    only_local = files.resolv_conf("nameserver 127.0.0.1\nnameserver ::1\n")
    assert only_local == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"  # Docker's fallback


def test_hosts_file_and_in_place_rewrite(tmp_path: Path) -> None:
    text = files.hosts([("10.88.0.2", ["box"])], [("10.88.0.3", ["web", "www", "abc"])])
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert text.endswith("10.88.0.2\tbox\n10.88.0.3\tweb www abc\n")
    # --add-host lines come after Docker's defaults and before the container's own
    extra = files.hosts([("10.88.0.2", ["box"])], [], [("10.1.2.3", "db"), ("::1", "v6")])
    assert extra.endswith("ff02::2\tip6-allrouters\n10.1.2.3\tdb\n::1\tv6\n"
                          "10.88.0.2\tbox\n")
    path = tmp_path / "hosts"
    path.write_text("old and longer than the new text\n")
    inode = path.stat().st_ino
    files.write_in_place(path, "new\n")
    assert path.read_text() == "new\n" and path.stat().st_ino == inode  # mounts stay valid


def test_subnet_pick_avoids_taken_and_routes() -> None:
    taken = [ipaddress.ip_network("10.88.0.0/24"), ipaddress.ip_network("10.88.1.0/24")]
    picked = subnets.pick(taken)
    assert picked.prefixlen == 24 and not any(picked.overlaps(t) for t in taken)
    assert not any(picked.overlaps(r) for r in subnets.host_routes())


def test_host_routes_see_every_table() -> None:
    # The local table always holds 127.0.0.0/8; the main one the host's own subnets.
    routes = subnets.host_routes()
    assert ipaddress.ip_network("127.0.0.0/8") in routes
    assert subnets.pick([]) not in routes


def test_network_definitions(tmp_path: Path) -> None:
    defs = Defs(tmp_path)
    net = Network(name="app", id="ab" * 32, bridge="muabab", subnet="10.88.3.0/24",
                  gateway="10.88.3.1")
    defs.add(net)
    with pytest.raises(AlreadyExists):
        defs.add(net)
    assert defs.find("app") == net and defs.find("abab") == net and net.prefixlen == 24
    with pytest.raises(NotFound):
        defs.find("nope")
    defs.remove("app")
    assert defs.all() == []
    for bad in ("bridge", "host", "-x", "a b", ""):
        with pytest.raises(InvalidArgument):
            check_name(bad)


def test_isolation_rules_name_their_bridge_and_come_target_first() -> None:
    got = rules.isolation("mu0")
    assert got == [
        # stage 2: nothing enters this bridge from another one
        ("filter", "MUELLE-ISOLATION", ["-o", "mu0", "-j", "DROP"]),
        # stage 1: what leaves it for another interface is looked at
        ("filter", "MUELLE-FORWARD", ["-i", "mu0", "!", "-o", "mu0", "-j", "MUELLE-ISOLATION"]),
    ]


def test_bridge_rules_name_their_bridge_and_guard_the_hosts_loopback() -> None:
    got = rules.of("mu0", "10.88.0.0/24")
    assert all("mu0" in rule for _, _, rule in got)  # removal by bridge is exact
    drop = [rule for _, chain, rule in got if chain == "MUELLE-INPUT"]
    # route_localnet must not open 127.0.0.1 to containers; our own publishes' replies
    # are ESTABLISHED and pass
    assert drop == [["-i", "mu0", "-d", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate",
                     "RELATED,ESTABLISHED", "-j", "DROP"]]


def test_resolv_conf_with_dns_replaces_each_part_given() -> None:
    """Docker's order (search, nameservers, options) whatever the host's; comments and
    other lines of the host's file dropped, as libnetwork's resolvconf.Build does."""
    from services.shim.network import files

    host = "# generated\nnameserver 192.168.1.1\nsearch lan\noptions edns0\nsortlist x\n"
    assert files.with_dns(host, ["10.10.10.10"], [], []) == \
        "search lan\nnameserver 10.10.10.10\noptions edns0\n"
    assert files.with_dns(host, [], ["a.example", "b"], ["ndots:2"]) == \
        "search a.example b\nnameserver 192.168.1.1\noptions ndots:2\n"
    assert files.with_dns(host, [], ["."], []) == "nameserver 192.168.1.1\noptions edns0\n"
