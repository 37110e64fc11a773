"""Checks of a create request's options and their translation into the shim's ContainerSpec.

Everything here runs before anything is stored, so bad input changes nothing.
"""

from __future__ import annotations

import os
import signal as signalmod

from muelle.engine.v1 import engine_pb2
from muelle.runtime.v1 import runtime_pb2

from services.core.errors import InvalidArgument
from services.gateway.merge import Merged

MIN_MEMORY = 6 * 1024 * 1024  # docker's minimum memory limit
CPU_PERIOD = 100_000  # microseconds, the CFS default docker uses with --cpus
DEFAULT_STOP_TIMEOUT = 10


def check_signal(text: str) -> str:
    """``text`` if it names a signal ("SIGTERM", "TERM", "15"), else InvalidArgument."""
    value = text.strip()
    if value.isdigit():
        if 0 < int(value) < 65:
            return value
    else:
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name in signalmod.Signals.__members__:
            return value
    raise InvalidArgument(f"invalid signal: {text}")


def security(opts: list[str]) -> tuple[bool, list[str]]:
    """(no_new_privileges, warnings) from --security-opt values."""
    nnp = False
    warnings: list[str] = []
    for opt in opts:
        key, sep, value = opt.replace("=", ":", 1).partition(":")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise InvalidArgument(f"invalid --security-opt {opt!r}: want true or false")
            nnp = value != "false"
        elif key in ("seccomp", "apparmor", "label") and sep:
            warnings.append(f"security option {opt!r} is not supported yet and was ignored")
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    return nnp, warnings


def resources(req: engine_pb2.CreateContainerRequest) -> runtime_pb2.Resources:
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
    quota = req.nano_cpus * CPU_PERIOD // 1_000_000_000 if req.nano_cpus else 0
    if req.nano_cpus and quota < 1000:  # the kernel refuses quotas under 1 ms
        raise InvalidArgument("Range of CPUs is from 0.01 to "
                              f"{ncpu}.00, as there are only {ncpu} CPUs available")
    return runtime_pb2.Resources(
        memory_limit=req.memory,
        memory_swap=req.memory_swap,
        pids_limit=max(0, req.pids_limit),
        cpu_quota=quota,
        cpu_period=CPU_PERIOD if quota else 0,
        cpu_shares=req.cpu_shares,
    )


def group_ids(groups: list[str]) -> list[int]:
    out = []
    for group in groups:
        if not group.isdigit():
            # Names live in the rootfs's /etc/group, which only the shim can read.
            raise InvalidArgument(f"--group-add {group!r}: only numeric group IDs are "
                                  "supported for now")
        out.append(int(group))
    return out


def check_request(req: engine_pb2.CreateContainerRequest) -> None:
    """Options that are wrong whatever the image says."""
    if not req.image:
        raise InvalidArgument("an image is required")
    if req.network_mode not in ("", "none", "host"):
        raise InvalidArgument(
            f"network mode {req.network_mode!r} is not supported yet: use none or host")
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


def container_spec(req: engine_pb2.CreateContainerRequest,
                   merged: Merged) -> tuple[runtime_pb2.ContainerSpec, list[str]]:
    """The shim's ContainerSpec for ``req`` merged with the image; plus warnings."""
    nnp, warnings = security(list(req.security_opt))
    check_signal(merged.stop_signal)
    spec = runtime_pb2.ContainerSpec(
        args=merged.args,
        env=merged.env,
        cwd=merged.working_dir,
        user=merged.user,
        hostname=merged.hostname,
        terminal=False,
        resources=resources(req),
        readonly_rootfs=req.read_only,
        network_mode=req.network_mode or "none",
        annotations=merged.labels,
        additional_gids=group_ids(list(req.group_add)),
        cap_add=list(req.cap_add),
        cap_drop=list(req.cap_drop),
        privileged=req.privileged,
        no_new_privileges=nnp,
    )
    spec.open_stdin = req.open_stdin  # io: docker -i
    spec.stdin_once = req.stdin_once
    spec.terminal = req.tty  # io: docker -t
    if req.tty and req.HasField("console_size"):
        spec.console_size.rows = req.console_size.rows
        spec.console_size.cols = req.console_size.cols
    return spec, warnings
