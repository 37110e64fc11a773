"""Published ports: checks, random host ports, and their DNAT rules."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import asdict, dataclass

from services.shim.network import iptables
from vocab.errors import FailedPrecondition, InvalidArgument


@dataclass(frozen=True)
class Port:
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.container_port}/{self.protocol} -> "
                f"{self.host_ip or '0.0.0.0'}:{self.host_port}")


def check(port: Port) -> Port:
    """Normalised ``port`` or INVALID_ARGUMENT."""
    proto = (port.protocol or "tcp").lower()
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid protocol {port.protocol!r}: use tcp or udp")
    if not 0 < port.container_port < 65536:
        raise InvalidArgument(f"invalid container port {port.container_port}")
    if not 0 <= port.host_port < 65536:
        raise InvalidArgument(f"invalid host port {port.host_port}")
    host_ip = port.host_ip
    if host_ip:
        try:
            addr = ipaddress.ip_address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid host IP {host_ip!r}") from None
        if addr.version != 4:
            raise InvalidArgument(f"IPv6 host addresses are not supported yet: {host_ip}")
        host_ip = "" if addr.is_unspecified else str(addr)
    return Port(port.container_port, proto, host_ip, port.host_port)


def free_port(proto: str) -> int:
    """A host port nothing listens on, picked by the kernel's ephemeral range."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _check_bindable(proto: str, host_ip: str, host_port: int) -> None:
    """Refuse a host address that is not local, or a port a host process serves: DNAT would
    silently take its connections away."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        # SO_REUSEADDR: a TCP port in TIME_WAIT is free; only a listener makes bind fail
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host_ip, host_port))
        except OSError as exc:
            raise FailedPrecondition(f"Bind for {host_ip or '0.0.0.0'}:{host_port} failed: "
                                     f"{exc.strerror.lower() if exc.strerror else exc}"
                                     ) from None


_DPORT = re.compile(r"-p (\w+) .*--dport (\d+) ")


def published() -> set[tuple[str, int]]:
    """(protocol, host port) pairs already forwarded by any muelle engine on this host."""
    out = set()
    for line in iptables.rules(iptables.NAT, iptables.DNAT_CHAIN):
        m = _DPORT.search(line + " ")
        if m:
            out.add((m.group(1), int(m.group(2))))
    return out


def resolve(ports: list[Port]) -> list[Port]:
    """Random host ports picked, clashes refused (with muelle's rules or listeners)."""
    taken = published()
    out = []
    for port in ports:
        if port.host_port == 0:
            host_port = free_port(port.protocol)
            while (port.protocol, host_port) in taken:
                host_port = free_port(port.protocol)
        else:
            host_port = port.host_port
            if (port.protocol, host_port) in taken:
                raise FailedPrecondition(f"Bind for {port.host_ip or '0.0.0.0'}:{host_port} "
                                         "failed: port is already allocated")
            _check_bindable(port.protocol, port.host_ip, host_port)
        taken.add((port.protocol, host_port))
        out.append(Port(port.container_port, port.protocol, port.host_ip, host_port))
    return out


def dnat_rule(port: Port, bridge: str, container_ip: str) -> list[str]:
    rule = ["-p", port.protocol]
    if port.host_ip:
        rule += ["-d", f"{port.host_ip}/32"]
    rule += ["!", "-i", bridge, "-m", port.protocol, "--dport", str(port.host_port),
             "-j", "DNAT", "--to-destination", f"{container_ip}:{port.container_port}"]
    return rule


def publish(ports: list[Port], bridge: str, container_ip: str) -> None:
    for port in ports:
        iptables.add(iptables.NAT, iptables.DNAT_CHAIN, dnat_rule(port, bridge, container_ip))


def unpublish(ports: list[Port], bridge: str, container_ip: str) -> None:
    for port in ports:
        iptables.delete(iptables.NAT, iptables.DNAT_CHAIN,
                        dnat_rule(port, bridge, container_ip))
