"""Pick a private subnet that no host route overlaps (nor another muelle network)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pyroute2 import IPRoute

from vocab.errors import FailedPrecondition

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
# Like podman: 10.88.0.0/16 then 10.89.0.0/16..., one /24 per network.
CANDIDATES = [ipaddress.ip_network(f"10.{b}.0.0/16") for b in range(88, 100)]


def host_routes() -> list[Net]:
    """Destinations of every IPv4 route in every table (the default route excluded)."""
    out = []
    with IPRoute() as ipr:
        # A dump has every table; pyroute2 0.9's table=0 filter matched none, so every
        # engine picked 10.88.0.0/24 and parallel engines' bridges collided.
        for route in ipr.get_routes(family=2):
            dst = route.get_attr("RTA_DST")
            if dst:
                out.append(ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False))
    return out


def pick(taken: Iterable[Net]) -> Net:
    busy = list(taken) + host_routes()
    for block in CANDIDATES:
        for net in block.subnets(new_prefix=24):
            if not any(net.overlaps(other) for other in busy):
                return net
    raise FailedPrecondition("no free private /24 left for a network")


def overlapping(subnet: Net,
                taken: Iterable[Net]) -> Net | None:
    """The first route or network that ``subnet`` collides with, if any."""
    for other in list(taken) + host_routes():
        if subnet.overlaps(other):
            return other
    return None
