"""Network verbs: `network create/ls/inspect/rm/connect/disconnect`, `port`, and -p parsing."""

from __future__ import annotations

from clients.cli.context import Context
from clients.cli.units import UsageError, table

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def _port_number(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"invalid {what} port {text!r}: a number from 1 to 65535")
    return int(text)


def parse_publish(spec: str) -> Any:
    """docker's -p: ``[ip:][host:]container[/tcp|udp]`` -> NetworkPort."""
    from clients.sdk import lite

    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise UsageError(f"invalid protocol {proto!r} in {spec!r}: use tcp or udp")
    parts = body.rsplit(":", 2)
    if len(parts) == 1:
        host_ip, host, container = "", "", parts[0]
    elif len(parts) == 2:
        host_ip, host, container = "", parts[0], parts[1]
    else:
        host_ip, host, container = parts
    if "-" in host or "-" in container:
        raise UsageError(f"port ranges are not supported yet: {spec!r}")
    host_ip = host_ip.strip("[]")
    if host_ip:
        import ipaddress  # only here: its import costs every `run` ~4 ms

        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise UsageError(f"invalid IP address {host_ip!r} in {spec!r}") from None
    return lite.types.NetworkPort(
        container_port=_port_number(container, "container"), protocol=proto,
        host_ip=host_ip, host_port=_port_number(host, "host") if host else 0)


def format_port(p: Any) -> str:
    return f"{p.container_port}/{p.protocol} -> {p.host_ip or '0.0.0.0'}:{p.host_port}"


def port(ctx: Context, args: argparse.Namespace) -> int:
    detail = ctx.client().inspect(args.container)
    wanted = args.private_port
    shown = 0
    for p in detail.ports:
        if wanted:
            num, _, proto = wanted.partition("/")
            if str(p.container_port) != num or (proto or "tcp") != p.protocol:
                continue
            ctx.line(f"{p.host_ip or '0.0.0.0'}:{p.host_port}")
        else:
            ctx.line(format_port(p))
        shown += 1
    if wanted and not shown:
        ctx.error(f"Error: No public port '{wanted}' published for {args.container}")
        return 1
    return 0


def _info_dict(net: Any) -> dict[str, Any]:
    return {"Name": net.name, "Id": net.id, "Created": net.created, "Driver": net.driver,
            "IPAM": {"Config": [{"Subnet": net.subnet, "Gateway": net.gateway}]
                     if net.subnet else []},
            "Options": {"com.docker.network.bridge.name": net.bridge},
            "Containers": list(net.containers)}


def network(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.client()
    verb = args.network_verb
    if verb == "create":
        ctx.line(client.create_network(args.name, args.subnet).id)
    elif verb == "ls":
        nets = client.networks()
        if args.quiet:
            for net in nets:
                ctx.line(net.id[:12])
            return 0
        rows = [["NETWORK ID", "NAME", "DRIVER", "SUBNET"]]
        rows += [[n.id[:12], n.name, n.driver, n.subnet or "-"] for n in nets]
        ctx.out.write(table(rows))
    elif verb == "inspect":
        import json  # here: `run` imports this module for -p, and json costs it ~2.5 ms

        out = [_info_dict(client.inspect_network(name)) for name in args.networks]
        ctx.line(json.dumps(out, indent=4))
    elif verb == "rm":
        for name in args.networks:
            client.remove_network(name)
            ctx.line(name)
    elif verb == "connect":
        client.connect_network(args.network, args.container, args.alias, args.link)
    elif verb == "disconnect":
        client.disconnect_network(args.network, args.container)
    return 0
