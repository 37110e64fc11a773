"""Netlink (pyroute2): bridges, veth pairs, addresses and routes, on the host or in a netns."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from services.runtime import linux

T = TypeVar("T")


def in_netns(path: str, fn: Callable[[IPRoute], T]) -> T:
    """``fn(ipr)`` with a netlink socket inside the namespace pinned at ``path``.

    A network namespace is per thread: a short-lived thread joins it and opens the socket
    there. (pyroute2's own netns support forks a helper, which is unsafe in the threaded
    gRPC server.)
    """
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                linux.setns(fd, linux.CLONE_NEWNET)
            finally:
                os.close(fd)
            with IPRoute() as ipr:
                result.append(fn(ipr))
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=run, name="netns")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def exists(name: str) -> bool:
    with IPRoute() as ipr:
        return _index(ipr, name) is not None


def has_address(name: str, address: str) -> bool:
    """Whether link ``name`` exists and carries ``address``."""
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            return False
        return address in {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx, family=2)}


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """The bridge ``name`` up with ``gateway/prefixlen``; created if missing."""
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            ipr.link("add", ifname=name, kind="bridge")
            idx = _index(ipr, name)
        assert idx is not None
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx, family=2)}
        if gateway not in have:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
    # Lets published 127.0.0.1 ports be DNATed to containers (see README: ports).
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
    _sysctl("net/ipv4/ip_forward", "1")


def _sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key
    with open(path) as f:
        if f.read().strip() == value:
            return
    with open(path, "w") as f:
        f.write(value)


def delete(name: str) -> None:
    """Delete a link (bridge or veth) if it exists."""
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is not None:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=idx)


def add_veth(host: str, bridge: str, netns: str, inner: str) -> None:
    """A veth pair: ``host`` on ``bridge``, its peer ``inner`` inside ``netns``."""
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=host, kind="veth",
                     peer={"ifname": inner, "net_ns_fd": fd})
            idx = _index(ipr, host)
            br = _index(ipr, bridge)
            ipr.link("set", index=idx, master=br, state="up")
    finally:
        os.close(fd)


def configure_inner(netns: str, inner: str, address: str, prefixlen: int,
                    gateway: str | None) -> None:
    """Inside the namespace: lo up, ``inner`` up with its address, default route if given."""
    def configure(ns: IPRoute) -> None:
        lo = ns.link_lookup(ifname="lo")[0]
        ns.link("set", index=lo, state="up")
        idx = ns.link_lookup(ifname=inner)[0]
        ns.addr("add", index=idx, address=address, prefixlen=prefixlen)
        ns.link("set", index=idx, state="up")
        if gateway:
            ns.route("add", dst="default", gateway=gateway)

    in_netns(netns, configure)


def names_in(netns: str) -> list[str]:
    return in_netns(netns, lambda ns: [str(link.get_attr("IFLA_IFNAME"))
                                       for link in ns.get_links()])


def bridge_ports(bridge: str) -> list[str]:
    """Names of the links enslaved to ``bridge``."""
    with IPRoute() as ipr:
        idx = _index(ipr, bridge)
        if idx is None:
            return []
        return [str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()
                if link.get_attr("IFLA_MASTER") == idx]
