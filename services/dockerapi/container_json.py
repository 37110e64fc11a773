"""Containers as Docker shows them: ``GET /containers/json`` entries and
``GET /containers/{id}/json``, from engine.v1 ContainerSummary / ContainerDetail.

Field names, ``null`` vs ``[]`` and value types follow dockerd 20.10 where clients read
them (COMPAT.md: State.Status, Config.Tty, NetworkSettings.Ports[..][0].HostPort as a
string, HostConfig.NetworkMode, NetworkSettings.Networks.<net>.Gateway).
"""

from __future__ import annotations

from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from vocab.envmerge import merge_env
from vocab.healthjson import health_json, healthcheck_json
from vocab.timefmt import parse_ns

ZERO_TIME = "0001-01-01T00:00:00Z"


def unix_seconds(rfc3339: str) -> int:
    try:
        return parse_ns(rfc3339) // 1_000_000_000 if rfc3339 else 0
    except ValueError:
        return 0


def _port_key(p: types_pb2.NetworkPort) -> str:
    return f"{p.container_port}/{p.protocol or 'tcp'}"


def ports_map(ports: list[types_pb2.NetworkPort], exposed: list[str]) -> dict[str, Any]:
    """NetworkSettings.Ports: every exposed port, null when not published."""
    out: dict[str, Any] = {key if "/" in key else f"{key}/tcp": None for key in exposed}
    for p in ports:
        # Docker lists a port published on every address for IPv4 and IPv6.
        hosts = [p.host_ip] if p.host_ip else ["0.0.0.0", "::"]
        entries = out.get(_port_key(p)) or []
        entries += [{"HostIp": ip, "HostPort": str(p.host_port)} for ip in hosts]
        out[_port_key(p)] = entries
    return out


def ports_list(ports: list[types_pb2.NetworkPort]) -> list[dict[str, Any]]:
    """The Ports of a list entry."""
    return [{"IP": p.host_ip or "0.0.0.0", "PrivatePort": p.container_port,
             "PublicPort": p.host_port, "Type": p.protocol or "tcp"} for p in ports]


def networks(endpoints: list[types_pb2.NetworkEndpoint]) -> dict[str, Any]:
    return {e.network: {
        "IPAMConfig": None, "Links": None, "Aliases": list(e.aliases) or None,
        "NetworkID": e.network_id, "EndpointID": "", "Gateway": e.gateway,
        "IPAddress": e.ip_address, "IPPrefixLen": e.prefix_len, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "",
        "DriverOpts": None} for e in endpoints}


def mounts(items: list[types_pb2.VolumeMount]) -> list[dict[str, Any]]:
    out = []
    for m in items:
        entry: dict[str, Any] = {"Type": m.type, "Source": m.source,
                                 "Destination": m.target, "Mode": "", "RW": not m.readonly,
                                 "Propagation": "rprivate" if m.type == "bind" else ""}
        if m.type == "volume":
            entry.update(Name=m.name, Driver="local")
        out.append(entry)
    return out


def summary(c: engine_pb2.ContainerSummary) -> dict[str, Any]:
    return {
        "Id": c.id, "Names": [f"/{c.name}"], "Image": c.image, "ImageID": c.image_id,
        "Command": c.command, "Created": unix_seconds(c.created),
        "Ports": ports_list(list(c.ports)), "Labels": dict(c.labels), "State": c.state,
        "Status": c.status, "HostConfig": {"NetworkMode": c.network_mode or "default"},
        "NetworkSettings": {"Networks": networks(list(c.network_endpoints))}, "Mounts": [],
    }


def _restart_policy(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    return {"Name": "" if name == "no" else name,
            "MaximumRetryCount": int(count) if count.isdigit() else 0}


def _state(s: engine_pb2.ContainerState) -> dict[str, Any]:
    out = {
        "Status": s.status, "Running": s.running, "Paused": s.status == "paused",
        "Restarting": s.status == "restarting", "OOMKilled": s.oom_killed, "Dead": False,
        "Pid": s.pid if s.running else 0, "ExitCode": s.exit_code, "Error": s.error,
        "StartedAt": s.started_at or ZERO_TIME, "FinishedAt": s.finished_at or ZERO_TIME,
    }
    if s.HasField("health"):  # dockerd: absent until a start with a check to run
        out["Health"] = health_json(s.health)
    return out


def _port_bindings(ports: list[types_pb2.NetworkPort]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in ports:
        out.setdefault(_port_key(p), []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port) if p.host_port else ""})
    return out


def inspect(d: engine_pb2.ContainerDetail,
            image: types_pb2.ImageConfig | None) -> dict[str, Any]:
    """``image``: the image's config (None once it is gone): its ExposedPorts join the
    requested ones; Config.Env and WorkingDir are dockerd's container config's (the run's
    over the image's, without what only the process gets: HOSTNAME, a default PATH, "/")."""
    req = d.config
    exposed = list(image.exposed_ports) if image is not None else []
    env = merge_env(list(image.env), list(req.env)) if image is not None else list(d.env)
    workdir = (req.working_dir or image.working_dir) if image is not None else d.working_dir
    args = list(d.args)
    first_net = d.networks[0] if d.networks else None
    cmd = list(d.cmd.values) if d.HasField("cmd") else None
    entrypoint = list(d.entrypoint.values) if d.HasField("entrypoint") else None
    exposed_all = sorted({*exposed, *req.exposed_ports, *(_port_key(p) for p in req.ports)})
    return {
        "Id": d.id, "Created": d.created, "Path": args[0] if args else "",
        "Args": args[1:], "State": _state(d.state), "Image": d.image_id,
        "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "", "LogPath": "",
        "Name": f"/{d.name}", "RestartCount": d.restart_count, "Driver": "overlay2",
        "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": {
            "Binds": list(req.binds) or None, "ContainerIDFile": "",
            "LogConfig": {"Type": "json-file", "Config": dict(req.log_opts)},
            "NetworkMode": req.network_mode or "default",  # as asked, like dockerd
            "PortBindings": _port_bindings(list(req.ports)),
            "RestartPolicy": _restart_policy(d.restart_policy or "no"),
            "AutoRemove": d.auto_remove, "VolumeDriver": "",
            "VolumesFrom": list(req.volumes_from) or None,
            "CapAdd": list(req.cap_add) or None, "CapDrop": list(req.cap_drop) or None,
            "CgroupnsMode": "private", "Dns": list(req.dns),
            "DnsOptions": list(req.dns_options), "DnsSearch": list(req.dns_search),
            "ExtraHosts": list(req.extra_hosts) or None, "GroupAdd": list(req.group_add) or None,
            "IpcMode": req.ipc_mode or "private", "Links": None, "OomScoreAdj": req.oom_score_adj,
            "PidMode": req.pid_mode, "Privileged": req.privileged,
            "PublishAllPorts": req.publish_all, "ReadonlyRootfs": req.read_only,
            "SecurityOpt": list(req.security_opt) or None,
            "Tmpfs": dict(req.tmpfs) or None, "UTSMode": req.uts_mode,
            "UsernsMode": req.userns,
            "ShmSize": req.shm_size or 67108864, "Runtime": d.runtime,
            "ConsoleSize": [req.console_size.rows, req.console_size.cols],
            "Isolation": "", "CpuShares": req.cpu_shares, "Memory": req.memory,
            "NanoCpus": req.nano_cpus, "CgroupParent": req.cgroup_parent,
            "CpusetCpus": req.cpuset_cpus, "CpusetMems": req.cpuset_mems,
            "MemorySwap": req.memory_swap, "MemoryReservation": req.memory_reservation,
            "MemorySwappiness": req.memory_swappiness
            if req.HasField("memory_swappiness") else None,
            "OomKillDisable": req.oom_kill_disable,
            "DeviceCgroupRules": list(req.device_cgroup_rules) or None,
            "PidsLimit": req.pids_limit or None, "Init": req.init,
            "Mounts": [{"Type": m.type, "Source": m.source, "Target": m.target,
                        "ReadOnly": m.readonly} for m in req.mounts] or None,
            "Devices": [{"PathOnHost": d.path_on_host,
                         "PathInContainer": d.path_in_container or d.path_on_host,
                         "CgroupPermissions": d.cgroup_permissions or "rwm"}
                        for d in req.devices],
            "Ulimits": [{"Name": u.name, "Hard": u.hard, "Soft": u.soft}
                        for u in req.ulimits] or None,
            **({"Sysctls": dict(req.sysctls)} if req.sysctls else {}),  # omitempty
        },
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "Mounts": mounts(list(d.mounts)),
        "Config": {
            "Hostname": d.hostname, "Domainname": "", "User": d.user,
            "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
            "ExposedPorts": {p: {} for p in exposed_all} or None,
            "Tty": req.tty, "OpenStdin": req.open_stdin, "StdinOnce": req.stdin_once,
            "Env": env, "Cmd": cmd, "Image": d.image, "Volumes": None,
            "WorkingDir": workdir, "Entrypoint": entrypoint, "OnBuild": None,
            "Labels": dict(d.labels), "StopSignal": d.stop_signal,
            "StopTimeout": d.stop_timeout,
            **({"Healthcheck": healthcheck_json(d.healthcheck)}
               if d.HasField("healthcheck") else {}),
        },
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports_map(list(d.ports), exposed_all), "SandboxKey": "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
            "Gateway": first_net.gateway if first_net else "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": first_net.ip_address if first_net else "",
            "IPPrefixLen": first_net.prefix_len if first_net else 0, "IPv6Gateway": "",
            "MacAddress": "", "Networks": networks(list(d.networks)),
        },
    }


def last_run_end(d: engine_pb2.ContainerDetail) -> str:
    """An exited container's finished_at, as seen before answering the client: the
    gateway's attach and wait count the next run from it (engine.v1 after_finished_at)."""
    return d.state.finished_at if d.state.status == "exited" else ""
