"""System endpoints: _ping, version, info (COMPAT.md "Minimal /version and /info")."""

from __future__ import annotations

from muelle.engine.v1 import engine_pb2

from services.dockerapi.engine import Gateway
from services.dockerapi.errors import bad_request
from services.dockerapi.http import API_VERSION, Request, Responder
from services.dockerapi.registryauth import server_host
from services.dockerapi.routes import MIN_API_VERSION
from vocab.version import VERSION

_NO_CACHE = [("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache")]
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
           "s390x": "s390x", "amd64": "amd64", "arm64": "arm64"}


class System:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def ping(self, req: Request, out: Responder) -> None:
        body = b"" if req.method == "HEAD" else b"OK"
        await out.body(200, body, "text/plain; charset=utf-8", headers=_NO_CACHE)

    async def version(self, req: Request, out: Responder) -> None:
        v = await self.gateway.call("Version", engine_pb2.VersionRequest())
        arch = GO_ARCH.get(v.arch, v.arch)
        details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                   "Os": v.os or "linux", "Arch": arch, "KernelVersion": v.kernel_version,
                   "GitCommit": "", "GoVersion": "", "BuildTime": "", "Experimental": "false"}
        await out.json(200, {
            "Platform": {"Name": "muelle"},
            "Components": [{"Name": "Engine", "Version": VERSION, "Details": details},
                           *({"Name": f"muelle-{name}", "Version": ver}
                             for name, ver in sorted(v.components.items()))],
            "Version": VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "", "GoVersion": "", "Os": v.os or "linux", "Arch": arch,
            "KernelVersion": v.kernel_version, "BuildTime": "",
        })

    async def info(self, req: Request, out: Responder) -> None:
        i = await self.gateway.call("Info", engine_pb2.InfoRequest())
        runtimes = {r.name: {"path": r.path} for r in i.runtimes}
        await out.json(200, {
            "ID": i.name, "Name": i.name, "ServerVersion": i.server_version or VERSION,
            "Containers": i.containers, "ContainersRunning": i.containers_running,
            "ContainersPaused": i.containers_paused, "ContainersStopped": i.containers_stopped,
            "Images": i.images, "Driver": i.storage_driver, "DriverStatus": [],
            "DockerRootDir": i.root_dir, "KernelVersion": i.kernel_version,
            "OperatingSystem": i.operating_system, "OSType": i.os_type or "linux",
            "Architecture": i.architecture, "NCPU": i.ncpu, "MemTotal": i.mem_total,
            "CgroupVersion": i.cgroup_version,
            "CgroupDriver": "cgroupfs", "LoggingDriver": "json-file",
            "Runtimes": runtimes, "DefaultRuntime": i.default_runtime,
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                        "Log": ["json-file"]},
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]},
            "SecurityOptions": ["name=seccomp,profile=default"],
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "Labels": [], "ExperimentalBuild": False, "Warnings": None,
        })

    async def df(self, req: Request, out: Responder) -> None:
        du = await self.gateway.call("SystemDf", engine_pb2.SystemDfRequest())
        volumes = await self.gateway.call("ListVolumes", engine_pb2.VolumeListRequest())
        layers = next((s.size for s in du.summary if s.type == "Images"), 0)
        await out.json(200, {
            "LayersSize": layers,
            "Images": [{"Id": i.id, "ParentId": "", "RepoTags": list(i.repo_tags) or None,
                        "RepoDigests": None, "Created": 0, "Size": i.size,
                        "SharedSize": i.shared_size, "VirtualSize": i.size, "Labels": None,
                        "Containers": i.containers} for i in du.images],
            "Containers": [{"Id": c.id, "Names": [f"/{c.name}"], "ImageID": c.image_id,
                            "Image": c.image_id, "Command": "", "Created": 0,
                            "SizeRw": c.size, "SizeRootFs": c.size, "Labels": {},
                            "State": c.state, "Status": c.state, "Ports": [],
                            "Mounts": []} for c in du.containers],
            "Volumes": [{"Name": v.name, "Driver": "local", "Mountpoint": v.mountpoint,
                         "CreatedAt": v.created_at, "Labels": dict(v.labels) or None,
                         "Scope": "local", "Options": None,
                         "UsageData": {"Size": -1, "RefCount": len(v.containers)}}
                        for v in volumes.volumes],
            "BuildCache": [],
        })

    async def auth(self, req: Request, out: Responder) -> None:
        """``POST /auth`` (docker login): the engine checks the credentials against the
        registry (engine.v1 Login). Unlike dockerd it also keeps them, in the registry
        service's auth file: pulls and pushes without X-Registry-Auth authenticate with them."""
        body = req.json({})
        if not isinstance(body, dict) or not isinstance(body.get("username", ""), str) \
                or not isinstance(body.get("password", ""), str):
            raise bad_request("the body must be a JSON object with username and password")
        server = server_host(str(body.get("serveraddress") or ""))
        await self.gateway.call("Login", engine_pb2.LoginRequest(
            server=server, username=body.get("username", ""),
            password=body.get("password", "")))
        await out.json(200, {"Status": "Login Succeeded", "IdentityToken": ""})
