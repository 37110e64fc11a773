"""ContainerSpec -> OCI runtime config.json with Docker's defaults (SPECS.md §5-6).

Pure functions: no filesystem access except what the caller passes in (the resolved
user), so every default is unit-testable without root.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.core import capabilities as core_caps
from services.core import cpuset
from services.core.inroot import join_in_root
from services.shim import seccomp_profile, userns
from services.shim.users import User
from vocab import hostopts
from vocab.errors import FailedPrecondition, InvalidArgument
from vocab.platform import DEFAULT_PATH

OCI_VERSION = "1.0.2"
SHM_SIZE = 64 * 1024 * 1024
DEFAULT_CPU_PERIOD = 100_000

DEFAULT_CAPS = core_caps.DOCKER_DEFAULT
INIT_TARGET = "/sbin/docker-init"
# Static builds only: the init runs inside any image, with or without a libc.
INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/docker-init",
                   "/usr/libexec/docker/docker-init")
ALL_CAPS = core_caps.ALL

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# Mounts that stay writable under --read-only (Docker withMounts).
_RW_UNDER_READONLY = {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"}


def _dev(major: int, minor: int | None, access: str = "rwm", allow: bool = True) -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": allow, "type": "c", "major": major, "access": access}
    if minor is not None:
        rule["minor"] = minor
    return rule


DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    _dev(1, 5), _dev(1, 3), _dev(1, 9), _dev(1, 8), _dev(5, 0), _dev(5, 1),
    _dev(10, 229, allow=False),
]


@dataclass
class BundleInput:
    """What spec generation needs besides the ContainerSpec."""

    id: str
    spec: shim_pb2.ContainerSpec
    user: User
    cgroup_parent: str = "muelle"
    # Host sysctls that exist (e.g. from /proc/sys); only these get set.
    available_sysctls: set[str] = field(default_factory=set)
    # Thermal-throttle dirs of the possible CPUs that exist on the host.
    thermal_paths: list[str] = field(default_factory=list)
    # Host path of the static init for spec.init ("" when none was found).
    init_path: str = ""
    # The user namespace the shim pinned for spec.uid_maps, joined by path.
    userns_path: str = ""
    # ipc/pid namespaces of another container to join (spec.ipc_mode / pid_mode
    # "container:<id>"), kind -> /proc/<its pid>/ns/<kind>.
    join_paths: dict[str, str] = field(default_factory=dict)
    # The host's device nodes (host_devices.py): a privileged container gets them all.
    host_devices: list[dict[str, Any]] = field(default_factory=list)
    # --device: the linux.devices entries and their device cgroup rules (host_devices.py).
    devices: list[dict[str, Any]] = field(default_factory=list)
    device_rules: list[dict[str, Any]] = field(default_factory=list)
    # --ulimit name -> the highest hard limit this host lets the container have (-1: any).
    rlimit_ceilings: dict[str, int] = field(default_factory=dict)
    # The lowest oom_score_adj the runtime can give (-1000 with CAP_SYS_RESOURCE).
    oom_score_floor: int = -1000


def normalize_cap(name: str) -> str:
    cap = name.strip().upper()
    if cap == "ALL":
        return cap
    if not cap.startswith("CAP_"):
        cap = "CAP_" + cap
    if cap not in ALL_CAPS:
        raise InvalidArgument(f"unknown capability: {name!r}")
    return cap


def capabilities(cap_add: list[str], cap_drop: list[str], privileged: bool,
                 available: list[str] | None = None) -> list[str]:
    """Docker's TweakCapabilities: add wins over drop for the same cap; ALL in either.
    "All" is every capability this host can give (``available``, default: our bounding set)."""
    if privileged:
        return list(core_caps.available() if available is None else available)
    adds = [normalize_cap(c) for c in cap_add]
    drops = [normalize_cap(c) for c in cap_drop]
    if "ALL" in adds:
        base = list(core_caps.available() if available is None else available)
        return [c for c in base if c not in drops or c in adds]
    base = [] if "ALL" in drops else [c for c in DEFAULT_CAPS if c not in drops]
    for cap in adds:
        if cap not in base:
            base.append(cap)
    return base


def build_env(env: list[str], hostname: str, terminal: bool) -> list[str]:
    """Docker's CreateDaemonEnvironment: defaults, then replace-or-append the user env."""
    out = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if terminal:
        out.append("TERM=xterm")
    index = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    for entry in env:
        key = entry.split("=", 1)[0]
        if not key:
            raise InvalidArgument(f"invalid environment variable: {entry!r}")
        if key in index:
            out[index[key]] = entry
        else:
            index[key] = len(out)
            out.append(entry)
    return out


def default_mounts(privileged: bool, readonly_rootfs: bool,
                   shm_size: int = SHM_SIZE) -> list[dict[str, Any]]:
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    cg_opts = (["rw"] if privileged else ["ro"]) + ["nosuid", "noexec", "nodev", "relatime"]
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                     "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": cg_opts},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]
    if readonly_rootfs:
        for m in mounts:
            if m["destination"] not in _RW_UNDER_READONLY and "ro" not in m["options"]:
                m["options"] = [o for o in m["options"] if o != "rw"] + ["ro"]
    return mounts


def with_user_mounts(defaults: list[dict[str, Any]],
                     user: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Docker's defaults, minus any the user mounts over, then the user's mounts."""
    taken = {m["destination"] for m in user}
    return [m for m in defaults if m["destination"] not in taken] + user


def resources(res: shim_pb2.Resources, privileged: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["devices"] = [{"allow": True, "access": "rwm"}] if privileged else [
        dict(r) for r in DEVICE_RULES
    ]
    if res.memory_limit < 0:
        raise InvalidArgument("memory limit must not be negative")
    memory: dict[str, Any] = {}
    if res.memory_reservation:
        memory["reservation"] = res.memory_reservation
    if res.HasField("memory_swappiness"):
        memory["swappiness"] = res.memory_swappiness
    if res.oom_kill_disable:
        memory["disableOOMKiller"] = True
    for text in res.device_cgroup_rules:
        try:
            kind, major, minor, access = hostopts.parse_device_cgroup_rule(text)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
        rule.update({k: n for k, n in (("major", major), ("minor", minor)) if n is not None})
        out["devices"].append(rule)
    if res.memory_limit:
        if res.memory_limit < 6 * 1024 * 1024:
            raise InvalidArgument("minimum memory limit allowed is 6MB")
        memory["limit"] = res.memory_limit
        if res.memory_swap == 0:
            memory["swap"] = 2 * res.memory_limit
        elif res.memory_swap == -1:
            memory["swap"] = -1
        elif res.memory_swap < res.memory_limit:
            raise InvalidArgument(
                "minimum memoryswap limit should be larger than memory limit")
        else:
            memory["swap"] = res.memory_swap
    elif res.memory_swap > 0:
        raise InvalidArgument("you should always set the memory limit when using memoryswap")
    if memory:
        out["memory"] = memory
    if res.pids_limit > 0:  # 0 and -1 mean unlimited, as in Docker
        out["pids"] = {"limit": res.pids_limit}
    cpu: dict[str, Any] = {}
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.cpu_quota > 0:
        cpu["quota"] = res.cpu_quota
        cpu["period"] = res.cpu_period or DEFAULT_CPU_PERIOD
    elif res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpuset_cpus:
        cpuset.check_available(res.cpuset_cpus, "cpus")
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpuset.check_available(res.cpuset_mems, "mems")
        cpu["mems"] = res.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    return out


def build_config(inp: BundleInput) -> dict[str, Any]:
    """The full OCI config.json for one container."""
    spec = inp.spec
    if not spec.args:
        raise InvalidArgument("no command specified")
    # The shim's network manager resolves the mode and the namespace's path (plan_config).
    network = spec.network_mode
    hostname = spec.hostname or inp.id[:12]
    caps = capabilities(list(spec.cap_add), list(spec.cap_drop), spec.privileged)
    user = inp.user
    gids = list(user.additional_gids)
    for gid in spec.additional_gids:
        if gid not in gids:
            gids.append(gid)
    env = build_env(list(spec.env), hostname, spec.terminal)
    if not any(e.startswith("HOME=") and len(e) > 5 for e in env) and user.home:
        env.append(f"HOME={user.home}")
    process: dict[str, Any] = {
        "terminal": spec.terminal,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": [INIT_TARGET, "--", *spec.args] if spec.init else list(spec.args),
        "env": env,
        "cwd": spec.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": spec.no_new_privileges,
    }
    if gids:
        process["user"]["additionalGids"] = gids
    if spec.ulimits:
        process["rlimits"] = rlimits(spec.ulimits, inp.rlimit_ceilings)
    if spec.oom_score_adj:
        if spec.oom_score_adj < inp.oom_score_floor:
            # runc fails without saying why ("can't get final child's PID"), muelle-runtime
            # would only warn: refused here, clearly.
            raise InvalidArgument(f"--oom-score-adj {spec.oom_score_adj}: below this host's "
                                  f"{inp.oom_score_floor} (lowering it needs "
                                  "CAP_SYS_RESOURCE)")
        process["oomScoreAdj"] = spec.oom_score_adj
    if not os.path.isabs(process["cwd"]):
        raise InvalidArgument(f"the working directory {spec.cwd!r} is invalid: not absolute")
    namespaces: list[dict[str, str]] = []
    for kind in ("pid", "ipc", "uts", "mount", "cgroup"):
        mode = {"pid": spec.pid_mode, "ipc": spec.ipc_mode, "uts": spec.uts_mode}.get(kind, "")
        if mode == "host":
            continue  # the host's: no namespace of its own
        path = inp.join_paths.get(kind, "")
        namespaces.append({"type": kind, **({"path": path} if path else {})})
    if network != "host":
        namespaces.insert(1, {"type": "network"})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": resources(spec.resources, spec.privileged),
        "cgroupsPath": f"/{inp.cgroup_parent.strip('/')}/{inp.id}",
    }
    userns = bool(spec.uid_maps)
    if userns:
        check_mapped(spec, user.uid, [user.gid, *gids])
        namespaces.append({"type": "user", **({"path": inp.userns_path}
                                              if inp.userns_path else {})})
        linux["uidMappings"] = id_mappings(spec.uid_maps)
        linux["gidMappings"] = id_mappings(spec.gid_maps)
    if spec.privileged:
        linux["devices"] = [dict(d) for d in inp.host_devices]  # as Docker: all of /dev
    else:
        if inp.devices:
            linux["devices"] = [dict(d) for d in inp.devices]
            linux["resources"]["devices"] += [dict(r) for r in inp.device_rules]
        linux["maskedPaths"] = (list(spec.masked_paths.values)
                                if spec.HasField("masked_paths")
                                else MASKED_PATHS + list(inp.thermal_paths))
        linux["readonlyPaths"] = (list(spec.readonly_paths.values)
                                  if spec.HasField("readonly_paths") else list(READONLY_PATHS))
        if spec.seccomp != "unconfined":
            linux["seccomp"] = seccomp_filter(spec.seccomp, caps)
    sysctl = {}
    # ping_group_range names groups the user namespace does not map (EINVAL): Docker's
    # network sysctls stay off in one, as they do under Docker's userns-remap.
    if network != "host" and not userns:
        for key, value in (("net.ipv4.ping_group_range", "0 2147483647"),
                           ("net.ipv4.ip_unprivileged_port_start", "0")):
            if key in inp.available_sysctls:
                sysctl[key] = value
    sysctl.update(spec.sysctls)  # the user's (checked by the gateway) win
    if sysctl:
        linux["sysctl"] = sysctl
    mounts = default_mounts(spec.privileged, spec.readonly_rootfs,
                            spec.shm_size or SHM_SIZE)
    if userns and (network == "host" or network.startswith("container:")):
        # The kernel lets a user namespace mount sysfs only in a network namespace it
        # owns; the host's (and maybe a peer's) belong to another. Docker uses the same
        # read-only bind for --userns with the host's network. Recursive: the kernel
        # refuses to bind a mount without the ones locked over it.
        sysfs = next(m for m in mounts if m["destination"] == "/sys")
        sysfs.update(type="bind", source="/sys",
                     options=["rbind", "nosuid", "noexec", "nodev", "ro"])
    if spec.init:
        if not inp.init_path:
            raise FailedPrecondition("--init: no static init found on the container host "
                                     "(install tini, or set shim.init_path)")
        # Docker's place for it; read-only, like Docker's bind of docker-init.
        mounts.append({"destination": INIT_TARGET, "type": "bind", "source": inp.init_path,
                       "options": ["bind", "ro", "nosuid", "nodev"]})
    config = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": spec.readonly_rootfs},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": dict(spec.annotations),
    }
    if spec.uts_mode:
        # The host's or another container's UTS namespace: its hostname is not ours to
        # set (runc and crun refuse a hostname without a UTS namespace of their own).
        del config["hostname"]
    return config


# OCI's unlimited: runc and crun read the limits as uint64.
RLIM_INFINITY = (1 << 64) - 1
CAP_SYS_RESOURCE = 24


def rlimits(ulimits: Sequence[types_pb2.Ulimit],
            ceilings: dict[str, int]) -> list[dict[str, Any]]:
    """process.rlimits of --ulimit (the last of a name wins, as the runtime applies them
    in order). InvalidArgument above ``ceilings``: the runtime could not set it, and
    runc's "operation not permitted" would not say which flag or why."""
    by_name = {ul.name: ul for ul in ulimits}
    out = []
    for name, ul in by_name.items():
        ceiling = ceilings.get(name, -1)
        if ceiling != -1 and (ul.hard == -1 or ul.hard > ceiling):
            hard = "unlimited" if ul.hard == -1 else str(ul.hard)
            raise InvalidArgument(f"--ulimit {name}: hard limit {hard} is above this host's "
                                  f"{ceiling} (raising it needs CAP_SYS_RESOURCE)")
        out.append({"type": f"RLIMIT_{name.upper()}",
                    "soft": RLIM_INFINITY if ul.soft == -1 else ul.soft,
                    "hard": RLIM_INFINITY if ul.hard == -1 else ul.hard})
    return out


def host_rlimit_ceilings(names: Sequence[str]) -> dict[str, int]:
    """The highest hard limit of each rlimit the container's processes can get: without
    CAP_SYS_RESOURCE, this process's hard limit (the runtime inherits it); with it, any,
    but never more open files than fs.nr_open."""
    can_raise = _has_cap(CAP_SYS_RESOURCE)
    out: dict[str, int] = {}
    for name in names:
        number = getattr(resource, f"RLIMIT_{name.upper()}", None)
        if not isinstance(number, int):
            continue  # not on this kernel: the runtime says so
        hard = resource.getrlimit(number)[1]
        if can_raise:
            out[name] = _nr_open() if name == "nofile" else -1
        else:
            out[name] = -1 if hard == resource.RLIM_INFINITY else hard
    return out


def host_oom_score_floor() -> int:
    """The lowest oom_score_adj a child of this process can set: any with
    CAP_SYS_RESOURCE, else not below its own (the kernel's oom_score_adj_min)."""
    if _has_cap(CAP_SYS_RESOURCE):
        return -1000
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1000  # unknown: the runtime says


def _has_cap(cap: int, status: str = "/proc/self/status") -> bool:
    try:
        with open(status) as f:
            line = next((x for x in f if x.startswith("CapEff:")), "")
    except OSError:
        return False
    return bool(line) and bool(int(line.split()[1], 16) >> cap & 1)


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


def rootfs_propagation(mounts: list[dict[str, Any]]) -> str:
    """The container root's propagation its bind mounts need ("" = the runtime's
    default): a slave bind under a private root would not receive the host's mounts
    (runc's and containerd's rule)."""
    options = {o for m in mounts for o in m.get("options", [])}
    if options & {"shared", "rshared"}:
        return "rshared"  # a shared bind needs a shared root to reach the host
    if options & {"slave", "rslave"}:
        return "rslave"
    return ""


def check_propagation(mounts: Sequence[types_pb2.VolumeMount], runtime: str) -> None:
    """Shared (bidirectional) propagation only where the runtime gives it: runc and crun
    do; muelle-runtime keeps the container's root a slave of the host's, so what the
    container mounts would not reach the host."""
    shared = [m.target for m in mounts if m.propagation in ("shared", "rshared")]
    if shared and runtime == "muelle":
        raise InvalidArgument(f"bind-propagation rshared of {shared[0]}: not supported by "
                              "muelle-runtime (use runtime runc or crun)")


def check_workdir(rootfs: str, cwd: str) -> None:
    """InvalidArgument if ``cwd`` (resolved inside ``rootfs``) or a parent of it exists and
    is not a directory: the runtime would fail to make it with a bare "File exists"."""
    if not cwd:
        return
    path = join_in_root(rootfs, cwd)
    while len(path) > len(rootfs):
        if os.path.lexists(path):
            if not os.path.isdir(path):
                raise InvalidArgument(f"the working directory {cwd!r} is invalid: "
                                      f"{path[len(rootfs):] or '/'} is not a directory "
                                      "in the container")
            return
        path = os.path.dirname(path)


def id_mappings(maps: Sequence[types_pb2.IDMapping]) -> list[dict[str, int]]:
    return [{"containerID": m.container_id, "hostID": m.host_id, "size": m.size}
            for m in maps]


def check_mapped(spec: shim_pb2.ContainerSpec, uid: int, gids: list[int]) -> None:
    """The process's user and groups must exist in the user namespace."""
    if not spec.uid_maps or not spec.gid_maps:
        raise InvalidArgument("a user namespace needs both uid and gid maps")
    if spec.privileged:
        raise InvalidArgument("privileged containers cannot run in a user namespace "
                              "(use --userns=host)")
    if userns.to_host([(m.container_id, m.host_id, m.size) for m in spec.uid_maps],
                     uid) is None:
        raise InvalidArgument(f"user {uid} is not mapped in the container's uid map")
    gid_ranges = [(m.container_id, m.host_id, m.size) for m in spec.gid_maps]
    for gid in gids:
        if userns.to_host(gid_ranges, gid) is None:
            raise InvalidArgument(f"group {gid} is not mapped in the container's gid map")


def maps_of(spec: shim_pb2.ContainerSpec) -> userns.Maps | None:
    """The user namespace's maps in the form mounts.mount_all takes (None: no userns)."""
    if not spec.uid_maps:
        return None
    return (tuple((m.container_id, m.host_id, m.size) for m in spec.uid_maps),
            tuple((m.container_id, m.host_id, m.size) for m in spec.gid_maps))


def seccomp_filter(text: str, caps: list[str]) -> dict[str, Any]:
    """Docker's default profile, or the user's (Docker's format) as OCI's object."""
    if not text:
        return seccomp_profile.default_profile(caps)
    try:
        profile = json.loads(text)
    except ValueError:
        raise InvalidArgument("invalid seccomp profile: not JSON") from None
    if not isinstance(profile, dict):
        raise InvalidArgument("invalid seccomp profile: not a JSON object")
    return seccomp_profile.from_docker(profile, caps)


def find_init(configured: str = "") -> str:
    """The static init binary for --init: configured, else tini-static or docker-init."""
    for path in ([configured] if configured else INIT_CANDIDATES):
        if path and os.access(path, os.X_OK):
            return path
    return ""


def host_sysctls() -> set[str]:
    """The default sysctls that exist on this host."""
    names = ("net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start")
    return {n for n in names if os.path.exists("/proc/sys/" + n.replace(".", "/"))}


def host_thermal_paths() -> list[str]:
    """Docker masks cpu<N>/thermal_throttle where it exists (GHSA-6fw5-f8r9-fgfm)."""
    base = "/sys/devices/system/cpu"
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith("cpu") and n[3:].isdigit())
    except OSError:
        return []
    return [f"{base}/{n}/thermal_throttle" for n in names
            if os.path.isdir(f"{base}/{n}/thermal_throttle")]
