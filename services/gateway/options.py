"""Checks of a create request's options and their translation into the shim's ContainerSpec.

Everything here runs before anything is stored, so bad input changes nothing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal as signalmod

from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.core import cpuset, numbers
from services.core.restart_policy import parse as restart_policy_parse
from services.gateway import extras, inputs, userns
from services.gateway.merge import Merged
from vocab import hostopts
from vocab.errors import InvalidArgument

MIN_MEMORY = 6 * 1024 * 1024  # docker's minimum memory limit
CPU_PERIOD = 100_000  # microseconds, the CFS default docker uses with --cpus
DEFAULT_STOP_TIMEOUT = 10
# Published ports of one container (-p and -P together). Each costs DNAT rules and a
# bound listener check, ~27 ms a port (issue 19: 1000 ports took 27 s to create), and
# Docker, which has no hard limit, runs one docker-proxy process per port, which makes a
# few thousand its practical ceiling. 1024 still takes a 1000-port range (RTP media
# servers publish such) and keeps a create's port work under half a minute.
MAX_PORTS = 1024
# Supplementary group IDs are gid_t (32 bits); (gid_t)-1 means "no group" to the kernel.
MAX_GID = (1 << 32) - 2


def check_signal(text: str) -> str:
    """``text`` if it names a signal ("SIGTERM", "TERM", "15"), else InvalidArgument."""
    value = text.strip()
    number = numbers.uint(value)
    if number is not None:
        if 0 < number < 65:
            return value
    elif not value.isdigit():
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name in signalmod.Signals.__members__:
            return value
    raise InvalidArgument(f"invalid signal: {text}")


def security(opts: list[str]) -> tuple[bool, str, list[str]]:
    """(no_new_privileges, seccomp, warnings) from --security-opt values. seccomp is ""
    (the default profile), "unconfined", or a profile's JSON (the CLI sends a file's
    contents, as docker's does)."""
    nnp = False
    seccomp = ""
    warnings: list[str] = []
    for opt in opts:
        key, sep, value = opt.replace("=", ":", 1).partition(":")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise InvalidArgument(f"invalid --security-opt {opt!r}: want true or false")
            nnp = value != "false"
        elif key == "seccomp" and sep:
            seccomp = _seccomp(value)
        elif key in ("apparmor", "label") and sep:
            warnings.append(f"security option {opt!r} is not supported yet and was ignored")
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    return nnp, seccomp, warnings


def _seccomp(value: str) -> str:
    if value == "unconfined":
        return value
    try:
        profile = json.loads(value)
    except ValueError:
        raise InvalidArgument("invalid --security-opt seccomp: want unconfined or a profile "
                              "file's JSON") from None
    if not isinstance(profile, dict) or not profile.get("defaultAction"):
        raise InvalidArgument("invalid seccomp profile: no defaultAction")
    return value


_SIZE = re.compile(r"^(\d{1,20}(?:\.\d{1,20})?)\s*([kmg]?)b?$", re.IGNORECASE | re.ASCII)
MAX_INT64 = (1 << 63) - 1
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def log_limits(opts: dict[str, str]) -> tuple[int, int]:
    """(max size in bytes, max files) from `--log-opt`s of the json-file driver; 0 means
    the engine's default."""
    size = files = 0
    for key, value in opts.items():
        if key == "max-size":
            m = _SIZE.match(value.strip())
            if not m or not 0 < float(m.group(1)) * _UNITS[m.group(2).lower()] <= MAX_INT64:
                raise InvalidArgument(f"invalid log opt max-size {value!r}: want a size "
                                      "like 10m")
            size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
        elif key == "max-file":
            number = numbers.uint(value)
            if number is None or not 1 <= number <= MAX_INT64:
                raise InvalidArgument(f"invalid log opt max-file {value!r}: want a number "
                                      "of files, at least 1")
            files = number
        else:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    return size, files


def restart_policy(req: engine_pb2.CreateContainerRequest) -> str:
    """The checked --restart value (the shim applies it)."""
    policy = restart_policy_parse(req.restart_policy)
    if policy.name != "no" and req.auto_remove:
        raise InvalidArgument("Conflicting options: --restart and --rm")
    return policy.text()


def resources(req: engine_pb2.CreateContainerRequest) -> shim_pb2.Resources:
    """Docker's checks of the resource options, then the cgroup values."""
    if req.memory < 0:
        raise InvalidArgument("invalid memory limit: must not be negative")
    if 0 < req.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if req.memory_swap < -1:
        raise InvalidArgument("invalid memory swap limit: use -1 for unlimited")
    if req.memory_swap > 0:
        if req.memory == 0:
            raise InvalidArgument(
                "You should always set the Memory limit when using Memoryswap limit")
        if req.memory_swap < req.memory:
            raise InvalidArgument(
                "Minimum memoryswap limit should be larger than memory limit, see usage")
    if req.nano_cpus < 0:
        raise InvalidArgument("invalid --cpus: must not be negative")
    ncpu = os.cpu_count() or 1
    if req.nano_cpus > ncpu * 1_000_000_000:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                              f"{ncpu} CPUs available")
    if req.cpu_shares < 0:
        raise InvalidArgument("invalid --cpu-shares: must not be negative")
    for text, kind in ((req.cpuset_cpus, "cpus"), (req.cpuset_mems, "mems")):
        if text:
            cpuset.parse(text, kind)  # the form; the shim checks its host has them
    _check_memory_extras(req)
    quota = req.nano_cpus * CPU_PERIOD // 1_000_000_000 if req.nano_cpus else 0
    if req.nano_cpus and quota < 1000:  # the kernel refuses quotas under 1 ms
        raise InvalidArgument("Range of CPUs is from 0.01 to "
                              f"{ncpu}.00, as there are only {ncpu} CPUs available")
    return shim_pb2.Resources(
        memory_limit=req.memory,
        memory_swap=req.memory_swap,
        pids_limit=max(0, req.pids_limit),
        cpu_quota=quota,
        cpu_period=CPU_PERIOD if quota else 0,
        cpu_shares=req.cpu_shares,
        cpuset_cpus=req.cpuset_cpus,
        cpuset_mems=req.cpuset_mems,
        memory_reservation=req.memory_reservation,
        memory_swappiness=req.memory_swappiness
        if req.HasField("memory_swappiness") and req.memory_swappiness != -1 else None,
        oom_kill_disable=req.oom_kill_disable,
        device_cgroup_rules=list(req.device_cgroup_rules),
    )


def _check_memory_extras(req: engine_pb2.CreateContainerRequest) -> None:
    """dockerd's checks of --memory-reservation, --memory-swappiness and
    --device-cgroup-rule (its words)."""
    if req.memory_reservation < 0 or 0 < req.memory_reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if req.memory and req.memory_reservation > req.memory:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage")
    if req.HasField("memory_swappiness") and req.memory_swappiness != -1 \
            and not 0 <= req.memory_swappiness <= 100:
        raise InvalidArgument(f"Invalid value: {req.memory_swappiness}, valid memory "
                              "swappiness range is 0-100")
    for rule in req.device_cgroup_rules:
        try:
            hostopts.parse_device_cgroup_rule(rule)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None


def update_resources(req: engine_pb2.UpdateContainerRequest) -> shim_pb2.Resources:
    """`docker update`'s checks, then the changed cgroup values (0 / empty: unchanged;
    the shim checks what depends on the container's current limits)."""
    if req.memory < 0 or 0 < req.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if req.memory_swap < -1:
        raise InvalidArgument("invalid memory swap limit: use -1 for unlimited")
    if req.nano_cpus and (req.cpu_quota or req.cpu_period):
        raise InvalidArgument("Conflicting options: CPU Quota cannot be updated as NanoCPUs "
                              "has already been set")
    if req.nano_cpus < 0 or req.cpu_shares < 0 or req.cpu_period < 0 or req.cpu_quota < -1:
        raise InvalidArgument("CPU values must not be negative (quota: -1 for unlimited)")
    if req.cpu_period and not 1000 <= req.cpu_period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                              "than 1s (i.e. 1000000)")
    if 0 < req.cpu_quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    for text, kind in ((req.cpuset_cpus, "cpus"), (req.cpuset_mems, "mems")):
        if text:
            cpuset.parse(text, kind)
    quota, period = req.cpu_quota, req.cpu_period
    if req.nano_cpus:
        quota, period = req.nano_cpus * CPU_PERIOD // 1_000_000_000, CPU_PERIOD
        if quota < 1000:
            raise InvalidArgument("CPU quota below 0.01 CPUs")
    return shim_pb2.Resources(
        memory_limit=req.memory, memory_swap=req.memory_swap, pids_limit=req.pids_limit,
        cpu_quota=quota, cpu_period=period, cpu_shares=req.cpu_shares,
        cpuset_cpus=req.cpuset_cpus, cpuset_mems=req.cpuset_mems)


def group_ids(groups: list[str]) -> list[int]:
    out = []
    for group in groups:
        gid = numbers.uint(group)
        if gid is None:
            # Names live in the rootfs's /etc/group, which only the shim can read.
            raise InvalidArgument(f"--group-add {group!r}: only numeric group IDs are "
                                  "supported for now")
        if gid > MAX_GID:
            raise InvalidArgument(f"--group-add {group}: out of range (at most {MAX_GID})")
        out.append(gid)
    return out


def check_request(req: engine_pb2.CreateContainerRequest) -> None:
    """Options that are wrong whatever the image says."""
    inputs.no_nul(req)
    if not req.image:
        raise InvalidArgument("an image is required")
    if req.HasField("console_size"):
        inputs.console_size(req.console_size.rows, req.console_size.cols)
    if len(req.ports) > MAX_PORTS:
        raise InvalidArgument(f"too many published ports ({len(req.ports)}): at most "
                              f"{MAX_PORTS} per container")
    if req.network_mode.startswith("container:") and not req.network_mode[10:]:
        raise InvalidArgument("--network container: needs a container name or ID")
    for flag, mode in (("--ipc", req.ipc_mode), ("--pid", req.pid_mode),
                       ("--uts", req.uts_mode)):
        namespace_mode(flag, mode)
    cgroup_parent(req.cgroup_parent)
    check_sysctls(dict(req.sysctls), host_network=req.network_mode == "host")
    extras.check(req)  # --add-host, --ulimit, --shm-size, --device, --oom-score-adj
    for server in req.dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidArgument(f"--dns {server!r} is not an IP address") from None
    if (req.dns or req.dns_search or req.dns_options) and \
            req.network_mode.startswith("container:"):
        raise InvalidArgument("--dns options conflict with --network container: (the "
                              "container uses that one's resolv.conf)")
    for path in [*req.masked_paths.values, *req.readonly_paths.values]:
        if not path.startswith("/"):
            raise InvalidArgument(f"masked and read-only paths must be absolute: {path!r}")
    for port in req.ports:
        if not 0 < port.container_port < 65536:
            raise InvalidArgument(f"invalid port {port.container_port}: must be 1-65535")
        if port.host_port > 65535:  # 0 asks for a free port
            raise InvalidArgument(f"invalid host port {port.host_port}: must be 1-65535")
        if port.protocol not in ("", "tcp", "udp"):
            raise InvalidArgument(f"invalid protocol {port.protocol!r}: use tcp or udp")
        if port.host_ip:
            # The shim checks it again; here a bad address is refused before anything exists.
            try:
                ipaddress.ip_address(port.host_ip)
            except ValueError:
                raise InvalidArgument(f"invalid host IP {port.host_ip!r}") from None
    if req.HasField("stop_timeout") and req.stop_timeout < -1:
        raise InvalidArgument("invalid stop timeout: must be -1 (forever) or more")
    if req.stop_signal:
        check_signal(req.stop_signal)
    if req.hostname and (len(req.hostname) > 253
                         or any(c.isspace() or c == "/" for c in req.hostname)):
        raise InvalidArgument(f"invalid hostname {req.hostname!r}")
    for key in req.labels:
        if not key:
            raise InvalidArgument("label keys must not be empty")


def namespace_mode(flag: str, mode: str) -> str:
    """An --ipc / --pid value as the shim takes it: "", "host" or "container:<ref>"."""
    if mode in ("", "private"):
        return ""
    if flag == "--ipc" and mode == "shareable":
        return mode  # its /dev/shm on the host, for containers that join it
    if mode == "host" or (mode.startswith("container:") and mode[10:]):
        return mode
    raise InvalidArgument(f"invalid {flag} {mode!r}: use host or container:<name|id>")


_CGROUP_PART = re.compile(r"^[A-Za-z0-9_.@-]+$")


def cgroup_parent(path: str) -> str:
    """A --cgroup-parent (a pod's cgroup_parent) as the shim takes it: "/a/b" of plain
    names (cgroupfs; no "..", no systemd slice syntax)."""
    if not path:
        return ""
    parts = [p for p in path.strip().split("/") if p]
    if ":" in path or not parts or any(p in (".", "..") or not _CGROUP_PART.match(p)
                                       for p in parts):
        raise InvalidArgument(f"invalid cgroup parent {path!r}: want a cgroupfs path of "
                              "plain names like /kubepods/pod1 (the systemd driver is not "
                              "supported)")
    return "/" + "/".join(parts)


# sysctl keys the kernel namespaces (Docker's list): the rest would change the host.
_NAMESPACED_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                       "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                       "kernel.shm_rmid_forced")


def check_sysctls(sysctls: dict[str, str], host_network: bool) -> None:
    for key, value in sysctls.items():
        ipc = key in _NAMESPACED_SYSCTLS or key.startswith("fs.mqueue.")
        if not (ipc or key.startswith("net.")) or ".." in key or "/" in key:
            raise InvalidArgument(f"sysctl {key!r} is not namespaced (allowed: net.*, "
                                  "fs.mqueue.*, kernel.msg*/sem/shm*)")
        if key.startswith("net.") and host_network:
            raise InvalidArgument(f"sysctl {key!r} is not allowed with the host's network")
        if "\n" in value:
            raise InvalidArgument(f"sysctl {key!r}: the value must be one line")


def container_spec(req: engine_pb2.CreateContainerRequest, merged: Merged,
                   userns_remap: list[types_pb2.IDMapping] | None = None,
                   ) -> tuple[shim_pb2.ContainerSpec, list[str]]:
    """The shim's ContainerSpec for ``req`` merged with the image; plus warnings."""
    nnp, seccomp, warnings = security(list(req.security_opt))
    log_size, log_files = log_limits(dict(req.log_opts))
    check_signal(merged.stop_signal)
    spec = shim_pb2.ContainerSpec(
        args=merged.args,
        env=merged.env,
        cwd=merged.working_dir,
        user=merged.user,
        hostname=merged.hostname,
        terminal=False,
        resources=resources(req),
        readonly_rootfs=req.read_only,
        network_mode=req.network_mode,  # empty: the shim's default (network.default_mode)
        annotations=merged.labels,
        additional_gids=group_ids(list(req.group_add)),
        init=req.init,
        restart_policy=restart_policy(req),
        log_max_size=log_size,
        log_max_files=log_files,
        cap_add=list(req.cap_add),
        cap_drop=list(req.cap_drop),
        privileged=req.privileged,
        no_new_privileges=nnp,
        seccomp=seccomp,
        ports=list(req.ports) + exposed_ports(req, merged.exposed_ports),
        network_aliases=list(req.network_aliases),
        dns=list(req.dns), dns_search=list(req.dns_search), dns_options=list(req.dns_options),
        sysctls=dict(req.sysctls),
        ipc_mode=namespace_mode("--ipc", req.ipc_mode),
        pid_mode=namespace_mode("--pid", req.pid_mode),
        uts_mode=namespace_mode("--uts", req.uts_mode),
        cgroup_parent=cgroup_parent(req.cgroup_parent),
    )
    extras.to_spec(req, spec)
    if req.HasField("masked_paths"):
        spec.masked_paths.values.extend(req.masked_paths.values)
    if req.HasField("readonly_paths"):
        spec.readonly_paths.values.extend(req.readonly_paths.values)
    if len(spec.ports) > MAX_PORTS:  # -P adds what the image EXPOSEs
        raise InvalidArgument(f"too many published ports ({len(spec.ports)}, with the "
                              f"image's exposed ports): at most {MAX_PORTS} per container")
    # The image's config (entrypoint, env, workdir) comes from a registry: as checked as
    # the request's own fields.
    inputs.no_nul(spec, "image config ")
    uid_maps, gid_maps = userns.maps(req, userns_remap or [])
    spec.uid_maps.extend(uid_maps)
    spec.gid_maps.extend(gid_maps)
    spec.open_stdin = req.open_stdin  # io: docker -i
    spec.stdin_once = req.stdin_once
    spec.terminal = req.tty  # io: docker -t
    if req.tty and req.HasField("console_size"):
        spec.console_size.rows = req.console_size.rows
        spec.console_size.cols = req.console_size.cols
    return spec, warnings


def exposed_ports(req: engine_pb2.CreateContainerRequest,
                  exposed: list[str]) -> list[types_pb2.NetworkPort]:
    """-P: each port the image EXPOSEs ("80/tcp") on a random host port, unless -p has it."""
    if not req.publish_all:
        return []
    have = {(p.container_port, p.protocol or "tcp") for p in req.ports}
    out = []
    for item in exposed:
        port, _, proto = item.partition("/")
        number = numbers.uint(port)
        if number is None or not 0 < number < 65536 or proto not in ("", "tcp", "udp"):
            continue  # an image's EXPOSE is a hint; one we cannot publish is skipped
        key = (number, proto or "tcp")
        if key not in have:
            have.add(key)
            out.append(types_pb2.NetworkPort(container_port=key[0], protocol=key[1]))
    return out


def parse_link(entry: str) -> tuple[str, str]:
    """Docker's --link "NAME[:ALIAS]" (or the "/name:/parent/alias" inspect shows) ->
    (name, alias)."""
    if not entry:
        raise InvalidArgument("empty string specified for links")
    parts = entry.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"bad format for links: {entry}")
    if len(parts) == 1:
        return entry, entry
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]
