"""``POST /containers/create``: Docker's Config + HostConfig + NetworkingConfig as an
engine.v1 CreateContainerRequest.

What engine.v1 has is mapped; a field it cannot honour is refused with 400 and its name
when it asks for something (the CLI sends most fields with zero values on every run, so
zero, empty and null pass). Accepted but only recorded by Docker (MacAddress...) is
ignored here too.
"""

from __future__ import annotations

from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi.errors import ApiError, bad_request

# HostConfig fields engine.v1 cannot honour yet: refused when set to anything but a zero
# value (and, for the modes, Docker's spelling of the default).
_UNSUPPORTED_HOST = (
    "DeviceRequests",
    "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuRealtimePeriod",
    "CpuRealtimeRuntime", "KernelMemory", "KernelMemoryTCP",
    "StorageOpt", "VolumeDriver", "Cgroup",
    "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
)
_DEFAULT_MODES = {"CgroupnsMode": ("", "private", "host"), "Isolation": ("", "default")}
_LOG_DRIVERS = ("", "json-file", "local")


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{name} must be a list of strings")
    return value


def _int(obj: dict[str, Any], key: str, bits: int = 64) -> int:
    """``bits``: refuse what a signed integer of that many bits cannot hold (protobuf
    would raise ValueError) with a 400; 0 when the caller checks the range itself."""
    value = obj.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f"{key} must be an integer, not {value!r}")
    if bits and not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise bad_request(f"{key} {value} is out of range")
    return value


def _dict(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{name} must be an object")
    return value


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"{key} must be a list")
    return value


def _ulimit(u: dict[str, Any]) -> types_pb2.Ulimit:
    """{"Name": "nofile", "Soft": 1024, "Hard": 2048}; the gateway checks the values."""
    return types_pb2.Ulimit(name=str(u.get("Name") or ""), soft=_int(u, "Soft", 64),
                            hard=_int(u, "Hard", 64))


def _device(d: dict[str, Any]) -> types_pb2.DeviceMapping:
    """{"PathOnHost", "PathInContainer", "CgroupPermissions"}; empty parts default in the
    gateway (the host path, "rwm")."""
    return types_pb2.DeviceMapping(
        path_on_host=str(d.get("PathOnHost") or ""),
        path_in_container=str(d.get("PathInContainer") or ""),
        cgroup_permissions=str(d.get("CgroupPermissions") or ""))


def _refuse_unsupported(host: dict[str, Any]) -> None:
    for key in _UNSUPPORTED_HOST:
        if host.get(key):
            raise ApiError(400, f"HostConfig.{key} is not supported by muelle yet")
    for key, defaults in _DEFAULT_MODES.items():
        if (host.get(key) or "") not in defaults:
            raise ApiError(400, f"HostConfig.{key}={host[key]!r} is not supported by "
                                "muelle yet")


def restart_text(policy: dict[str, Any]) -> str:
    """HostConfig.RestartPolicy as engine.v1's text ("" for none)."""
    name = policy.get("Name") or ""
    if name in ("", "no"):
        return ""
    if name == "on-failure":
        retries = _int(policy, "MaximumRetryCount", 32)
        return f"on-failure:{retries}" if retries else "on-failure"
    if name in ("always", "unless-stopped"):
        return str(name)
    raise bad_request(f"invalid restart policy {name!r}")


def _ports(bindings: dict[str, Any]) -> list[types_pb2.NetworkPort]:
    ports = []
    for key, hosts in bindings.items():
        port, _, proto = key.partition("/")
        if not port.isdigit():
            raise bad_request(f"invalid port {key!r}")
        for host in hosts or [{}]:
            host = _dict(host, f"PortBindings[{key}]")
            host_port = str(host.get("HostPort") or "")
            if host_port and not host_port.isdigit():
                raise ApiError(400, f"host port range {host_port!r} is not supported by "
                                    "muelle yet")
            ports.append(types_pb2.NetworkPort(
                container_port=int(port), protocol=proto or "tcp",
                host_ip=str(host.get("HostIp") or ""), host_port=int(host_port or 0)))
    return ports


def _mount(m: dict[str, Any]) -> types_pb2.VolumeMount:
    kind = m.get("Type") or "volume"
    if kind not in ("bind", "volume", "tmpfs"):
        raise ApiError(400, f"mount type {kind!r} is not supported by muelle yet")
    tmpfs = _dict(m.get("TmpfsOptions"), "TmpfsOptions")
    volume = _dict(m.get("VolumeOptions"), "VolumeOptions")
    return types_pb2.VolumeMount(
        type=kind, source=str(m.get("Source") or ""), target=str(m.get("Target") or ""),
        readonly=bool(m.get("ReadOnly")), no_copy=bool(volume.get("NoCopy")),
        tmpfs_size=_int(tmpfs, "SizeBytes"), tmpfs_mode=_int(tmpfs, "Mode", 32))


_HEALTH_DURATIONS = (("Interval", "interval_ns"), ("Timeout", "timeout_ns"),
                     ("StartPeriod", "start_period_ns"), ("StartInterval", "start_interval_ns"))


def healthcheck(value: Any) -> types_pb2.Healthcheck | None:
    """Config.Healthcheck (durations in ns) as engine.v1's; None when absent. Types are
    checked here, values (durations under 1 ms, negative retries) by the gateway."""
    if value is None:
        return None
    doc = _dict(value, "Healthcheck")
    out = types_pb2.Healthcheck(test=_strings(doc.get("Test"), "Healthcheck.Test"))
    for key, attr in _HEALTH_DURATIONS:
        number = _int(doc, key, 0)
        if not -2**63 <= number < 2**63:
            raise bad_request(f"Healthcheck.{key} is out of range: {number}")
        setattr(out, attr, number)
    retries = _int(doc, "Retries", 0)
    if not -2**31 <= retries < 2**31:
        raise bad_request(f"Healthcheck.Retries is out of range: {retries}")
    out.retries = retries
    return out


def create_request(body: Any, name: str) -> engine_pb2.CreateContainerRequest:
    config = _dict(body, "the request body")
    host = _dict(config.get("HostConfig"), "HostConfig")
    image = config.get("Image")
    if not image or not isinstance(image, str):
        raise bad_request("Config.Image is required")
    _refuse_unsupported(host)
    log = _dict(host.get("LogConfig"), "LogConfig")
    if (log.get("Type") or "") not in _LOG_DRIVERS:
        raise ApiError(400, f"log driver {log['Type']!r} is not supported by muelle yet "
                            "(json-file only)")
    req = engine_pb2.CreateContainerRequest(
        image=image, name=name, env=_strings(config.get("Env"), "Env"),
        working_dir=str(config.get("WorkingDir") or ""), user=str(config.get("User") or ""),
        hostname=str(config.get("Hostname") or ""),
        labels={str(k): str(v) for k, v in _dict(config.get("Labels"), "Labels").items()},
        stop_signal=str(config.get("StopSignal") or ""), tty=bool(config.get("Tty")),
        open_stdin=bool(config.get("OpenStdin")), stdin_once=bool(config.get("StdinOnce")),
        memory=_int(host, "Memory"), memory_swap=_int(host, "MemorySwap"),
        memory_reservation=_int(host, "MemoryReservation"),
        # the docker CLI sends -1 for "the host's", which dockerd keeps as unset (null)
        memory_swappiness=None if host.get("MemorySwappiness") in (None, -1)
        else _int(host, "MemorySwappiness"),
        oom_kill_disable=bool(host.get("OomKillDisable")),
        device_cgroup_rules=_strings(host.get("DeviceCgroupRules"), "DeviceCgroupRules"),
        exposed_ports=list(_dict(config.get("ExposedPorts"), "ExposedPorts")),
        pids_limit=max(_int(host, "PidsLimit"), 0), nano_cpus=_nano_cpus(host),
        cpu_shares=_int(host, "CpuShares"), cpuset_cpus=str(host.get("CpusetCpus") or ""),
        cpuset_mems=str(host.get("CpusetMems") or ""), runtime=_runtime(host),
        auto_remove=bool(host.get("AutoRemove")),
        read_only=bool(host.get("ReadonlyRootfs")), privileged=bool(host.get("Privileged")),
        cap_add=_strings(host.get("CapAdd"), "CapAdd"),
        cap_drop=_strings(host.get("CapDrop"), "CapDrop"),
        security_opt=_strings(host.get("SecurityOpt"), "SecurityOpt"),
        group_add=_strings(host.get("GroupAdd"), "GroupAdd"),
        network_mode=_network_mode(host), init=bool(host.get("Init")),
        log_opts={str(k): str(v) for k, v in _dict(log.get("Config"), "LogConfig").items()},
        restart_policy=restart_text(_dict(host.get("RestartPolicy"), "RestartPolicy")),
        binds=_binds(config, host),
        volumes_from=_strings(host.get("VolumesFrom"), "VolumesFrom"),
        links=_links(config, host),
        tmpfs={str(k): str(v) for k, v in _dict(host.get("Tmpfs"), "Tmpfs").items()},
        ports=_ports(_dict(host.get("PortBindings"), "PortBindings")),
        publish_all=bool(host.get("PublishAllPorts")),
        network_aliases=_aliases(config, host),
        userns="host" if host.get("UsernsMode") == "host" else "",
        dns=_strings(host.get("Dns"), "Dns"),
        dns_search=_strings(host.get("DnsSearch"), "DnsSearch"),
        dns_options=_strings(host.get("DnsOptions"), "DnsOptions"),
        sysctls={str(k): str(v) for k, v in _dict(host.get("Sysctls"), "Sysctls").items()},
        pid_mode=str(host.get("PidMode") or ""), ipc_mode=str(host.get("IpcMode") or ""),
        uts_mode=str(host.get("UTSMode") or ""),
        cgroup_parent=str(host.get("CgroupParent") or ""),
        extra_hosts=_strings(host.get("ExtraHosts"), "ExtraHosts"),
        ulimits=[_ulimit(_dict(u, "Ulimits[]")) for u in _list(host, "Ulimits")],
        shm_size=_int(host, "ShmSize", 64),
        devices=[_device(_dict(d, "Devices[]")) for d in _list(host, "Devices")],
        oom_score_adj=_int(host, "OomScoreAdj", 32),
    )
    # null: the defaults; a list, even an empty one (--security-opt systempaths=unconfined),
    # replaces them.
    for key, field in (("MaskedPaths", req.masked_paths), ("ReadonlyPaths",
                                                           req.readonly_paths)):
        if host.get(key) is not None:
            field.SetInParent()
            field.values.extend(_strings(host[key], key))
    if config.get("Cmd") is not None:
        req.cmd.values.extend(_strings(config["Cmd"], "Cmd"))
    if config.get("Entrypoint") is not None:
        req.entrypoint.values.extend(_strings(config["Entrypoint"], "Entrypoint") or [""])
    health = healthcheck(config.get("Healthcheck"))
    if health is not None:
        req.healthcheck.CopyFrom(health)
    if "StopTimeout" in config and config["StopTimeout"] is not None:
        req.stop_timeout = _int(config, "StopTimeout", 32)
    for m in host.get("Mounts") or []:
        req.mounts.append(_mount(_dict(m, "Mounts[]")))
    size = host.get("ConsoleSize") or [0, 0]
    if req.tty and isinstance(size, list) and len(size) == 2 and all(size):
        req.console_size.rows, req.console_size.cols = int(size[0]), int(size[1])
    return req


def _binds(config: dict[str, Any], host: dict[str, Any]) -> list[str]:
    """HostConfig.Binds, and an anonymous volume per Config.Volumes path no bind or mount
    targets: the docker CLI's ``-v /path`` and compose's ``- /path`` arrive there, not in
    Binds (dockerd makes each a fresh volume)."""
    binds = _strings(host.get("Binds"), "Binds")
    taken = {b.split(":")[1] if ":" in b else b for b in binds}
    taken |= {str(_dict(m, "Mounts[]").get("Target") or "") for m in host.get("Mounts") or []}
    for path in _dict(config.get("Volumes"), "Volumes"):
        if str(path) not in taken:
            binds.append(str(path))
    return binds


def _nano_cpus(host: dict[str, Any]) -> int:
    nano = _int(host, "NanoCpus")
    quota, period = _int(host, "CpuQuota"), _int(host, "CpuPeriod")
    if nano and quota:
        raise bad_request("conflicting options: Nano CPUs and CPU Period cannot both be set")
    if quota > 0:
        return quota * 1_000_000_000 // (period or 100_000)
    return nano


def _runtime(host: dict[str, Any]) -> str:
    runtime = str(host.get("Runtime") or "")
    return "" if runtime in ("runc-default", "default") else runtime


def _network_mode(host: dict[str, Any]) -> str:
    mode = str(host.get("NetworkMode") or "")
    return "" if mode == "default" else mode


def _aliases(config: dict[str, Any], host: dict[str, Any]) -> list[str]:
    networking = _dict(config.get("NetworkingConfig"), "NetworkingConfig")
    endpoints = _dict(networking.get("EndpointsConfig"), "EndpointsConfig")
    mode = _network_mode(host)
    aliases: list[str] = []
    for network, endpoint in endpoints.items():
        if mode and network != mode:
            raise ApiError(400, "connecting a container to more than one network at create "
                                "is not supported by muelle yet")
        aliases += _strings(_dict(endpoint, "EndpointsConfig").get("Aliases"), "Aliases")
    return aliases


def _links(config: dict[str, Any], host: dict[str, Any]) -> list[str]:
    """HostConfig.Links (docker run --link) and each endpoint's Links (compose's)."""
    links = _strings(host.get("Links"), "Links")
    networking = _dict(config.get("NetworkingConfig"), "NetworkingConfig")
    for endpoint in _dict(networking.get("EndpointsConfig"), "EndpointsConfig").values():
        links += _strings(_dict(endpoint, "EndpointsConfig").get("Links"), "Links")
    return list(dict.fromkeys(links))


# docker update's body (UpdateConfig: Resources + RestartPolicy) that engine.v1 carries.
UPDATABLE = ("Memory", "MemorySwap", "PidsLimit", "NanoCpus", "CpuQuota", "CpuPeriod",
             "CpuShares", "CpusetCpus", "CpusetMems", "RestartPolicy")


def update_request(body: dict[str, Any]) -> engine_pb2.UpdateContainerRequest:
    """The resources of a docker update body (zero: unchanged, as the CLI sends every
    field); ``PidsLimit`` 0 or -1 means unlimited, as dockerd reads it."""
    out = engine_pb2.UpdateContainerRequest(
        memory=_int(body, "Memory"), memory_swap=_int(body, "MemorySwap"),
        nano_cpus=_int(body, "NanoCpus"), cpu_quota=_int(body, "CpuQuota"),
        cpu_period=_int(body, "CpuPeriod"), cpu_shares=_int(body, "CpuShares"),
        cpuset_cpus=str(body.get("CpusetCpus") or ""),
        cpuset_mems=str(body.get("CpusetMems") or ""))
    if body.get("PidsLimit") is not None:
        pids = _int(body, "PidsLimit")
        out.pids_limit = -1 if pids <= 0 else pids
    return out

