"""Links, addresses and routes, on the host or in a netns, through rtnl.py (plain
netlink)."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from services.runtime.api import linux
from services.shim.network import rtnl

T = TypeVar("T")


def in_netns(path: str, fn: Callable[[], T]) -> T:
    """``fn()`` inside the network namespace pinned at ``path``.

    A network namespace is per thread: a short-lived thread joins it and calls ``fn``,
    whose netlink sockets are then the namespace's. (No helper process: a fork is unsafe in
    the threaded gRPC server.)
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
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=run, name="netns")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def exists(name: str) -> bool:
    return rtnl.index(name) is not None


def has_address(name: str, address: str) -> bool:
    """Whether link ``name`` exists and carries ``address``."""
    if rtnl.primary_ipv4(name) == address:
        return True  # every create asks this of its bridge: one ioctl
    idx = rtnl.index(name)
    return idx is not None and address in rtnl.ipv4_addresses(idx)


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """The bridge ``name`` up with ``gateway/prefixlen``; created if missing."""
    with rtnl.Socket() as sock:
        idx = rtnl.index(name)
        if idx is None:
            sock.add_bridge(name)
            idx = rtnl.index(name)
        assert idx is not None
        if gateway not in rtnl.ipv4_addresses(idx):
            sock.add_address(idx, gateway, prefixlen)
        sock.set_up(idx)
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
    with rtnl.Socket() as sock, contextlib.suppress(OSError):
        sock.delete_link(name)


def detach(name: str) -> bool:
    """Take link ``name`` off its bridge and down; False if there is no such link."""
    idx = rtnl.index(name)
    if idx is None:
        return False
    with rtnl.Socket() as sock:
        try:
            sock.detach(idx)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return False  # deleted meanwhile (its peer's namespace went)
            raise
    return True


def add_veth(host: str, bridge: str, netns: str, inner: str) -> None:
    """A veth pair: ``host`` up on ``bridge``, its peer ``inner`` inside ``netns``."""
    master = rtnl.index(bridge)
    if master is None:
        raise OSError(f"bridge {bridge} is missing")
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with rtnl.Socket() as sock:
            sock.add_veth(host, inner, fd, master)
    finally:
        os.close(fd)


def configure_inner(netns: str, inner: str, address: str, prefixlen: int,
                    gateway: str | None) -> None:
    """Inside the namespace: lo up, ``inner`` up with its address, default route if given."""
    def configure() -> None:
        lo, idx = rtnl.index("lo"), rtnl.index(inner)
        if lo is None or idx is None:
            raise OSError(f"{inner} is missing from the container's network namespace")
        with rtnl.Socket() as sock:
            sock.set_up(lo)
            sock.add_address(idx, address, prefixlen)
            sock.set_up(idx)
            if gateway:
                sock.add_default_route(gateway)

    in_netns(netns, configure)


def names_in(netns: str) -> list[str]:
    return in_netns(netns, lambda: [name for _idx, name, _master in rtnl.links()])


def bridge_ports(bridge: str) -> list[str]:
    """Names of the links enslaved to ``bridge``."""
    idx = rtnl.index(bridge)
    if idx is None:
        return []
    return [name for _idx, name, master in rtnl.links() if master == idx]
