"""The netfilter rules that belong to one bridge network (not to its containers)."""

from __future__ import annotations

from services.shim.network import iptables

Rule = tuple[str, str, list[str]]


def isolation(bridge: str) -> list[Rule]:
    """Docker's two isolation stages: what leaves this bridge for another interface is
    looked at (stage 1, at the top of MUELLE-FORWARD, before its ACCEPTs), and dropped
    when it would enter any muelle bridge (stage 2: every bridge lists itself there). The
    host's uplink is in no list, so containers still reach the outside; a bridge's own
    traffic (seen here with br_netfilter) does not match ``! -o`` and passes. In the
    order they are made: the jump names a chain that must exist."""
    return [
        (iptables.FILTER, iptables.ISOLATION_CHAIN, ["-o", bridge, "-j", "DROP"]),
        (iptables.FILTER, iptables.FWD_CHAIN,
         ["-i", bridge, "!", "-o", bridge, "-j", iptables.ISOLATION_CHAIN]),
    ]


def of(bridge: str, subnet: str) -> list[Rule]:
    return [
        # outbound NAT to the host's uplink
        (iptables.NAT, iptables.POST_CHAIN, ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]),
        # 127.0.0.1 publishes: the DNATed packet keeps source 127.0.0.1, which the
        # container could not answer; route_localnet lets it out, this rewrites it.
        (iptables.NAT, iptables.POST_CHAIN,
         ["-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"]),
        # forwarding, even where the FORWARD policy is DROP (e.g. docker installed)
        (iptables.FILTER, iptables.FWD_CHAIN, ["-i", bridge, "-j", "ACCEPT"]),
        (iptables.FILTER, iptables.FWD_CHAIN, ["-o", bridge, "-j", "ACCEPT"]),
        # route_localnet would also let a container send to the host's 127.0.0.1 services
        # (CVE-2020-8558); replies to our own loopback publishes are ESTABLISHED.
        (iptables.FILTER, iptables.INPUT_CHAIN,
         ["-i", bridge, "-d", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate",
          "RELATED,ESTABLISHED", "-j", "DROP"]),
    ]


def add(bridge: str, subnet: str) -> None:
    for table, chain, rule in isolation(bridge):
        iptables.add(table, chain, rule, first=True)  # before any ACCEPT
    for table, chain, rule in of(bridge, subnet):
        iptables.add(table, chain, rule)


def delete(bridge: str, subnet: str) -> None:
    for table, chain, rule in of(bridge, subnet):
        iptables.delete(table, chain, rule)
    for table, chain, rule in reversed(isolation(bridge)):  # the jump before its target
        iptables.delete(table, chain, rule)
