"""Container networking on the shim's host (CNI/podman style, for every OCI runtime).

The shim pins a network namespace per container, wires it (veth on a bridge, an address
from a persisted pool, default route, published ports), and config.json joins it by path.
See README.md beside this file.
"""

from __future__ import annotations

from typing import Any

from muelle.shim.v1 import shim_pb2

from services.shim.network.manager import Manager, Plan, Request
from services.shim.network.ports import Port

__all__ = ["Manager", "Plan", "Request", "plan_config", "request_of"]

NET_SYSCTLS = ("net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start")


def request_of(spec: shim_pb2.ContainerSpec, hostname: str) -> Request:
    return Request(
        mode=spec.network_mode, hostname=hostname,
        ports=[Port(p.container_port, p.protocol or "tcp", p.host_ip, p.host_port)
               for p in spec.ports],
        aliases=list(dict.fromkeys(a for a in spec.network_aliases if a)),
        dns=list(spec.dns), dns_search=list(spec.dns_search),
        dns_options=list(spec.dns_options), extra_hosts=list(spec.extra_hosts),
        links=[(link.partition(":")[0], link.partition(":")[2]) for link in spec.links
               if ":" in link])


def plan_config(config: dict[str, Any], plan: Plan) -> None:
    """Point config.json's network namespace at the plan's and add the files' mounts."""
    linux = config["linux"]
    spaces = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    if plan.netns is not None:
        entry = {"type": "network", **({"path": plan.netns} if plan.netns else {})}
        spaces.insert(1, entry)
    else:  # the host's network: its sysctls are not the container's to change
        for key in NET_SYSCTLS:
            linux.get("sysctl", {}).pop(key, None)
        if "sysctl" in linux and not linux["sysctl"]:
            del linux["sysctl"]
    linux["namespaces"] = spaces
    # --read-only covers them too, as Docker's NetworkMounts (RW: !ReadonlyRootfs).
    readonly = bool(config.get("root", {}).get("readonly"))
    for mount in plan.mounts:
        options = list(mount["options"])
        if readonly and "ro" not in options:
            options.append("ro")
        config["mounts"].append({**mount, "options": options})
