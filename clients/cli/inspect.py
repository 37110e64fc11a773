"""`muelle inspect`: containers, then images, as a docker-shaped JSON list."""

from __future__ import annotations

import argparse
import json
from typing import Any

from clients.cli.context import Context


def _opt_list(msg: Any, name: str) -> list[str] | None:
    return list(getattr(msg, name).values) if msg.HasField(name) else None


def _mount_json(m: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": m.type}
    if m.type == "volume":
        out.update(Name=m.name, Driver="local")
    out.update(Source=m.source, Destination=m.target, Mode="ro" if m.readonly else "",
               RW=not m.readonly, Propagation="rprivate" if m.type == "bind" else "")
    return out


def _port_bindings(ports: Any) -> dict[str, list[dict[str, str]]]:
    """docker's {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        out.setdefault(f"{p.container_port}/{p.protocol or 'tcp'}", []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port) if p.host_port else ""})
    return out


def _network_settings(d: Any) -> dict[str, Any]:
    first = d.networks[0] if d.networks else None
    return {
        "IPAddress": first.ip_address if first else "",
        "IPPrefixLen": first.prefix_len if first else 0,
        "Gateway": first.gateway if first else "",
        "Ports": _port_bindings(d.ports),
        "Networks": {n.network: {"NetworkID": n.network_id, "IPAddress": n.ip_address,
                                 "IPPrefixLen": n.prefix_len, "Gateway": n.gateway,
                                 "Aliases": list(n.aliases)} for n in d.networks},
    }


def container_json(d: Any) -> dict[str, Any]:
    c = d.config
    st = d.state
    return {
        "Id": d.id,
        "Created": d.created,
        "Path": d.args[0] if d.args else "",
        "Args": list(d.args[1:]),
        "State": {
            "Status": st.status, "Running": st.running, "Paused": st.status == "paused",
            "Restarting": False, "OOMKilled": st.oom_killed, "Dead": False, "Pid": st.pid,
            "ExitCode": st.exit_code, "Error": st.error, "StartedAt": st.started_at,
            "FinishedAt": st.finished_at, **_health(st),
        },
        "Image": d.image_id,
        "Name": "/" + d.name,
        "RestartCount": d.restart_count,
        "Platform": "linux",
        "Driver": "overlay",
        "Bundle": d.bundle,
        "ExecIDs": None,
        "GraphDriver": {"Data": None, "Name": "overlay"},
        "HostConfig": {
            "Runtime": d.runtime, "AutoRemove": d.auto_remove, "Memory": c.memory,
            "RestartPolicy": _restart_policy(d.restart_policy),
            "MemorySwap": c.memory_swap, "NanoCpus": c.nano_cpus, "CpuShares": c.cpu_shares,
            "CpusetCpus": c.cpuset_cpus, "CpusetMems": c.cpuset_mems,
            "PidsLimit": c.pids_limit or None, "ReadonlyRootfs": c.read_only,
            "CapAdd": list(c.cap_add) or None, "CapDrop": list(c.cap_drop) or None,
            "Privileged": c.privileged, "SecurityOpt": list(c.security_opt) or None,
            "NetworkMode": d.network_mode or c.network_mode or "bridge",
            "GroupAdd": list(c.group_add) or None,
            "Binds": list(c.binds) or None, "Tmpfs": dict(c.tmpfs) or None,
            "PortBindings": _port_bindings(c.ports),
            "PublishAllPorts": c.publish_all,
            "UsernsMode": c.userns, "UIDMap": list(c.uid_maps) or None,
            "GIDMap": list(c.gid_maps or c.uid_maps) or None,
            # as dockerd shows them (its default ShmSize filled in)
            "ExtraHosts": list(c.extra_hosts) or None,
            "Ulimits": [{"Name": u.name, "Hard": u.hard, "Soft": u.soft}
                        for u in c.ulimits] or None,
            "ShmSize": c.shm_size or 64 << 20, "OomScoreAdj": c.oom_score_adj,
            "Devices": [{"PathOnHost": v.path_on_host, "PathInContainer": v.path_in_container,
                         "CgroupPermissions": v.cgroup_permissions} for v in c.devices],
        },
        "NetworkSettings": _network_settings(d),
        "Mounts": [_mount_json(m) for m in d.mounts],
        "Config": {
            "Hostname": d.hostname, "Domainname": "", "User": d.user, "Tty": c.tty,
            "Env": list(d.env) or None,
            "OpenStdin": c.open_stdin, "StdinOnce": c.stdin_once,
            "Cmd": _opt_list(d, "cmd"), "Entrypoint": _opt_list(d, "entrypoint"),
            "Image": d.image, "WorkingDir": d.working_dir, "Labels": dict(d.labels),
            "StopSignal": d.stop_signal, "StopTimeout": d.stop_timeout,
            **_healthcheck(d),
        },
    }


def _health(st: Any) -> dict[str, Any]:
    """State.Health as docker's: absent until the container ran with a check."""
    from vocab.healthjson import health_json

    return {"Health": health_json(st.health)} if st.HasField("health") else {}


def _healthcheck(d: Any) -> dict[str, Any]:
    """Config.Healthcheck as docker's: durations in ns, zero fields left out."""
    from vocab.healthjson import healthcheck_json

    return {"Healthcheck": healthcheck_json(d.healthcheck)} if d.HasField("healthcheck") \
        else {}


def image_json(d: Any) -> dict[str, Any]:
    s, c = d.summary, d.config
    # Docker's shape: what the image config lacks is null (Env, Cmd, Labels...), not empty.
    config = {
        "Hostname": "", "Domainname": "", "User": c.user, "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False,
        "ExposedPorts": {p: {} for p in c.exposed_ports} or None, "Tty": False,
        "OpenStdin": False, "StdinOnce": False, "Env": list(c.env) or None,
        "Cmd": _opt_list(c, "cmd"), "Image": "",
        "Volumes": {v: {} for v in c.volumes} or None, "WorkingDir": c.working_dir,
        "Entrypoint": _opt_list(c, "entrypoint"), "OnBuild": None,
        "Labels": dict(c.labels) or None, **({"StopSignal": c.stop_signal}
                                             if c.stop_signal else {}),
        **_healthcheck(c),
    }
    out: dict[str, Any] = {
        "Id": s.id, "RepoTags": list(s.repo_tags), "RepoDigests": list(s.repo_digests),
        "Parent": "", "Comment": "", "Created": s.created, "Container": "",
        "ContainerConfig": {**config, "Cmd": None, "Entrypoint": None, "Env": None,
                            "Labels": None},
        "DockerVersion": "", "Author": d.author, "Config": config,
        "Architecture": d.platform.architecture, "Os": d.platform.os,
        "Size": s.size, "VirtualSize": s.size,
        "GraphDriver": {"Data": None, "Name": "overlay"},
        "RootFS": {"Type": "layers", "Layers": list(d.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        "ManifestDigest": d.manifest_digest,
    }
    if d.platform.variant:
        out["Variant"] = d.platform.variant
    return out


def inspect(ctx: Context, args: argparse.Namespace) -> int:
    from vocab.errors import NotFound

    tmpl = None
    if args.format:
        from clients.cli.formatting import template

        tmpl, _ = template(args.format)
    client = ctx.client()
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for name in args.objects:
        if args.type in ("", "container"):
            try:
                found.append(container_json(client.inspect(name)))
                continue
            except NotFound:
                pass
        try:
            if args.type in ("", "image"):
                found.append(image_json(client.inspect_image(name)))
                continue
        except NotFound:
            pass
        missing.append(name)
    if tmpl is None:
        ctx.line(json.dumps(found, indent=4))
    else:
        from clients.cli.gotemplate import TemplateError

        for obj in found:  # one line each, as docker inspect -f prints them
            try:
                ctx.line(tmpl.render(obj))
            except TemplateError as exc:
                ctx.error(f"template: {exc}")
                return 1
    for name in missing:
        kind = {"container": "container", "image": "image"}.get(args.type, "object")
        ctx.error(f"Error: No such {kind}: {name}")
    return 1 if missing else 0


def _restart_policy(text: str) -> dict[str, Any]:
    name, _, count = (text or "no").partition(":")
    return {"Name": name, "MaximumRetryCount": int(count) if count.isdigit() else 0}
