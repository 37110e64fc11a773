"""Bundle building: a container spec into an OCI bundle in the container dir (the rootfs
mounted, config.json written) and the container's typed meta (meta.py).

What it makes on the host is recorded as it goes, for the caller to undo on any error:
the rootfs mounts and the pinned user namespace live in the container dir (the shim's
_destroy takes them), the volume references in ``resolved``, the network plan in the
network manager's state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.core.config import Config
from services.core.inroot import make_target
from services.shim import access, mounts, restart, shm, spec, users, volume_mounts
from services.shim import userns as usernsmod
from services.shim.host_devices import host_devices, mapped_devices
from services.shim.meta import Meta
from services.shim.network import Manager as NetworkManager
from services.shim.network import plan_config, request_of
from services.shim.store import ContainerDir, write_json
from services.shim.volumes import VolumeStore


class Bundle:
    def __init__(self, cdir: ContainerDir, cfg: Config, volumes: VolumeStore,
                 networks: NetworkManager) -> None:
        self.cdir = cdir
        self.cfg = cfg
        self.volumes = volumes
        self.networks = networks
        self.resolved = volume_mounts.Resolved()  # the volume references taken so far

    def build(self, cspec: shim_pb2.ContainerSpec, rootfs: Sequence[types_pb2.Mount],
              runtime: str, created_at: str,
              join_paths: Callable[[], dict[str, str]],
              ipc_peer: ContainerDir | None = None) -> Meta:
        """Mount the rootfs, write config.json; the meta to record (not written here).
        ``join_paths``: kind -> namespace path of the peers ipc_mode/pid_mode name;
        ``ipc_peer``: the dir of the container ipc_mode "container:<id>" names."""
        cdir, cid = self.cdir, self.cdir.id
        cdir.rootfs.mkdir()
        maps = spec.maps_of(cspec)
        mounts.mount_all(rootfs, str(cdir.rootfs), maps)
        if maps:  # before the network: its namespace will belong to this one
            usernsmod.pin(str(cdir.userns), maps)
        user = users.resolve(str(cdir.rootfs), cspec.user)
        spec.check_workdir(str(cdir.rootfs), cspec.cwd)
        if cspec.cwd not in ("", "/"):
            # As dockerd, which makes it at create in the writable layer: a --read-only
            # container may start in a directory its image lacks, with any runtime.
            make_target(str(cdir.rootfs), cspec.cwd, True)
        devices: list[dict[str, Any]] = []
        rules: list[dict[str, Any]] = []
        for dev in cspec.devices if not cspec.privileged else []:
            found, allowed = mapped_devices(dev.path_on_host, dev.path_in_container,
                                            dev.cgroup_permissions)
            devices += found
            rules += allowed
        config = spec.build_config(spec.BundleInput(
            id=cid, spec=cspec, user=user,
            cgroup_parent=cspec.cgroup_parent or self.cfg.shim.cgroup_parent,
            available_sysctls=spec.host_sysctls(),
            thermal_paths=spec.host_thermal_paths(),
            init_path=spec.find_init(self.cfg.shim.init_path) if cspec.init else "",
            userns_path=str(cdir.userns) if maps else "",
            join_paths=join_paths(),
            host_devices=host_devices() if cspec.privileged else [],
            devices=devices, device_rules=rules,
            rlimit_ceilings=spec.host_rlimit_ceilings([u.name for u in cspec.ulimits]),
            oom_score_floor=spec.host_oom_score_floor() if cspec.oom_score_adj < 0
            else -1000))
        if cspec.ipc_mode == shm.SHAREABLE:
            shm.use(config, shm.make(cdir, cspec.shm_size or spec.SHM_SIZE))
        elif ipc_peer is not None and shm.path(ipc_peer).exists():
            shm.use(config, shm.of_peer(ipc_peer))  # else: shares IPC, keeps its own shm
        self.resolved = volume_mounts.prepare(cspec.volume_mounts, str(cdir.rootfs), cid,
                                              self.volumes)
        access.share(cdir, maps, self.resolved.records)
        # No hostname in config.json with a UTS namespace that is not its own.
        hostname = config.get("hostname") or cspec.hostname or cid[:12]
        plan = self.networks.prepare(cid, request_of(cspec, hostname))
        plan_config(config, plan)  # hosts, hostname, resolv.conf: user mounts win
        config["mounts"] = spec.with_user_mounts(config["mounts"], self.resolved.oci)
        propagation = spec.rootfs_propagation(self.resolved.oci)
        if propagation:
            config["linux"]["rootfsPropagation"] = propagation
        if cspec.terminal and cspec.console_size.rows and cspec.console_size.cols:
            config["process"]["consoleSize"] = {"height": cspec.console_size.rows,
                                                "width": cspec.console_size.cols}
        write_json(cdir.config, config)
        return Meta(
            runtime=runtime,
            created_at=created_at,
            cgroups_path=config["linux"]["cgroupsPath"],
            own_pid_ns=_own_pid_ns(config),
            log_max_size=cspec.log_max_size or self.cfg.shim.log_max_size,
            log_max_files=cspec.log_max_files or self.cfg.shim.log_max_files,
            restart_policy=restart.parse(cspec.restart_policy).text(),
            rootfs=[{"type": m.type, "source": m.source, "target": m.target,
                     "options": list(m.options)} for m in rootfs],
            volumes=self.resolved.records,
            userns=[[list(r) for r in maps[0]], [list(r) for r in maps[1]]] if maps else None,
            stdin={"once": cspec.stdin_once} if cspec.open_stdin else None,
            terminal=cspec.terminal,
        )


def _own_pid_ns(config: dict[str, Any]) -> bool:
    """Whether the container has a pid namespace of its own: its processes then die with
    its init (delete may unmount early)."""
    return any(n.get("type") == "pid" and not n.get("path")
               for n in config["linux"].get("namespaces") or [])
