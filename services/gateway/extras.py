"""A create request's --add-host, --ulimit, --shm-size, --device and --oom-score-adj:
checked before anything is stored, then copied into the shim's ContainerSpec.

What only the container's host can tell (a device path that is not a device there,
a ulimit above its hard limits) the shim checks when it builds the bundle.
"""

from __future__ import annotations

from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2

from vocab import hostopts
from vocab.errors import InvalidArgument


def check(req: engine_pb2.CreateContainerRequest) -> None:
    """InvalidArgument naming the flag of the first bad value."""
    for entry in req.extra_hosts:
        try:
            hostopts.parse_extra_host(entry)
        except ValueError as exc:
            raise InvalidArgument(f"invalid --add-host {entry!r}: {exc}") from None
    if req.extra_hosts and req.network_mode.startswith("container:"):
        # dockerd's ErrConflictNetworkHosts: that container's hosts file is shared.
        raise InvalidArgument("conflicting options: custom host-to-IP mapping and the "
                              "network mode")
    for ul in req.ulimits:
        try:
            hostopts.check_ulimit(ul.name, ul.soft, ul.hard)
        except ValueError as exc:
            raise InvalidArgument(f"invalid --ulimit {ul.name}={ul.soft}:{ul.hard}: "
                                  f"{exc}") from None
    if req.shm_size < 0:
        raise InvalidArgument("invalid --shm-size: SHM size can not be less than 0")
    for dev in req.devices:
        try:
            hostopts.check_device(dev.path_on_host, dev.path_in_container,
                                  dev.cgroup_permissions)
        except ValueError as exc:
            raise InvalidArgument(f"invalid --device {dev.path_on_host!r}: {exc}") from None
    try:
        hostopts.check_oom_score_adj(req.oom_score_adj)
    except ValueError as exc:
        raise InvalidArgument(f"invalid --oom-score-adj: {exc}") from None


def to_spec(req: engine_pb2.CreateContainerRequest, spec: shim_pb2.ContainerSpec) -> None:
    """Copy the checked values into the shim's spec (names and IPs stripped as docker
    writes them)."""
    for entry in req.extra_hosts:
        name, ip = hostopts.parse_extra_host(entry)
        spec.extra_hosts.append(f"{name}:{ip}")
    spec.ulimits.extend(req.ulimits)
    spec.shm_size = req.shm_size
    for dev in req.devices:
        mapped = spec.devices.add()
        mapped.CopyFrom(dev)
        mapped.path_in_container = dev.path_in_container or dev.path_on_host
        mapped.cgroup_permissions = dev.cgroup_permissions or "rwm"
    spec.oom_score_adj = req.oom_score_adj
