"""CRI containers: engine containers in the network of their pod's infra container."""

from __future__ import annotations

import contextlib
import os

from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc
from muelle.types.v1 import types_pb2

from services.cri import records, stats, verbose
from services.cri.events import Events
from services.cri.logs import Logs
from services.cri.records import Record
from services.cri.sandboxes import host_network, pod_hostname
from vocab.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound

_STATES = {"created": api_pb2.CONTAINER_CREATED, "running": api_pb2.CONTAINER_RUNNING,
           "paused": api_pb2.CONTAINER_RUNNING, "exited": api_pb2.CONTAINER_EXITED}
# CRI mount propagation -> engine.v1's (Kubernetes' None, HostToContainer, Bidirectional).
# Bidirectional needs a pod whose runtime handler is runc or crun: the shim refuses it
# for muelle-runtime, which keeps the container's root a slave of the host's.
_PROPAGATION = {api_pb2.PROPAGATION_PRIVATE: "rprivate",
                api_pb2.PROPAGATION_HOST_TO_CONTAINER: "rslave",
                api_pb2.PROPAGATION_BIDIRECTIONAL: "rshared"}
# How long ContainerStatus of an exited container waits for its CRI log to be complete,
# so that a reader who saw EXITED finds all the output in the file.
LOG_FLUSH_WAIT = 5.0
# How much longer than its timeout an ExecSync may take before muelle-cri gives up on it.
EXEC_GRACE = 10


def engine_request(sandbox_id: str, sandbox: api_pb2.PodSandboxConfig,
                   config: api_pb2.ContainerConfig) -> engine_pb2.CreateContainerRequest:
    """The engine.v1 create request for a CRI container config (what muelle supports of it;
    INVALID_ARGUMENT for what it cannot honour rather than ignoring it)."""
    meta, pod = config.metadata, sandbox.metadata
    if not meta.name:
        raise InvalidArgument("container metadata needs a name")
    if not config.image.image:
        raise InvalidArgument("container config needs an image")
    log_path = ""
    if sandbox.log_directory and config.log_path:
        log_path = os.path.join(sandbox.log_directory, config.log_path)
    req = engine_pb2.CreateContainerRequest(
        image=config.image.image,
        name=records.engine_name("k8s", meta.name, pod.name, pod.namespace, pod.uid,
                                 str(meta.attempt)),
        labels={records.KIND: "container", records.SANDBOX: sandbox_id,
                records.CONFIG: records.encode(config), records.LOG_PATH: log_path,
                records.IMAGE: config.image.image},
        env=[f"{kv.key}={_text(kv.value, 'environment value')}" for kv in config.envs],
        working_dir=config.working_dir,
        tty=config.tty, open_stdin=config.stdin, stdin_once=config.stdin_once,
        network_mode="host" if host_network(sandbox) else f"container:{sandbox_id}",
        hostname="" if host_network(sandbox) else pod_hostname(sandbox),
        # The pod's hostname is its infra container's UTS namespace, shared (so one
        # container's sethostname is the pod's, as in containerd).
        uts_mode="host" if host_network(sandbox) else f"container:{sandbox_id}",
        cgroup_parent=sandbox.linux.cgroup_parent,
        # The image's HEALTHCHECK is Docker's, not Kubernetes' (its probes are the
        # kubelet's): not run, as containerd and CRI-O do not run it.
        healthcheck=types_pb2.Healthcheck(test=["NONE"]),
    )
    if config.stop_signal:  # RUNTIMEDEFAULT (0): the image's, else SIGTERM
        req.stop_signal = api_pb2.Signal.Name(config.stop_signal)
    # Kubernetes' command replaces the image's entrypoint and then ignores its Cmd; args
    # alone replace the Cmd (containerd's rule).
    if config.command:
        req.entrypoint.values.extend(config.command)
        req.cmd.values.extend(config.args)
        req.cmd.SetInParent()
    elif config.args:
        req.cmd.values.extend(config.args)
    for m in config.mounts:
        if not m.container_path or not m.host_path:
            raise InvalidArgument("a mount needs a container_path and a host_path")
        req.mounts.append(types_pb2.VolumeMount(type="bind", source=m.host_path,
                                                 target=m.container_path,
                                                 readonly=m.readonly,
                                                 propagation=_propagation(m)))
    linux = config.linux
    req.ipc_mode = namespace_mode(sandbox_id, sandbox, "ipc", linux.security_context)
    req.pid_mode = namespace_mode(sandbox_id, sandbox, "pid", linux.security_context)
    res = linux.resources
    req.memory = res.memory_limit_in_bytes
    req.cpu_shares = res.cpu_shares
    if res.cpu_quota > 0 and res.cpu_period > 0:
        req.nano_cpus = res.cpu_quota * 1_000_000_000 // res.cpu_period
    req.cpuset_cpus, req.cpuset_mems = res.cpuset_cpus, res.cpuset_mems
    sc = linux.security_context
    req.privileged = sc.privileged
    req.read_only = sc.readonly_rootfs
    req.cap_add.extend(sc.capabilities.add_capabilities)
    req.cap_drop.extend(sc.capabilities.drop_capabilities)
    req.user = _user(sc)
    req.group_add.extend(str(g) for g in sc.supplemental_groups)
    if sc.masked_paths:  # none: the runtime's defaults (the kubelet's are the same)
        req.masked_paths.values.extend(sc.masked_paths)
    if sc.readonly_paths:
        req.readonly_paths.values.extend(sc.readonly_paths)
    if sc.no_new_privs:
        req.security_opt.append("no-new-privileges")
    req.security_opt.extend(_seccomp(sc))
    return req


def update_request(cid: str, res: api_pb2.LinuxContainerResources
                   ) -> engine_pb2.UpdateContainerRequest:
    """engine.v1's update of CRI's LinuxContainerResources. oom_score_adj is a process's
    and is not changed on a running container (containerd neither); the kubelet lists
    every huge page size, with limit 0 for those the pod does not use: only a real huge
    page limit or a cgroup v2 `unified` entry is refused, as not supported."""
    if any(h.limit for h in res.hugepage_limits):
        raise InvalidArgument("huge page limits are not supported by muelle-cri")
    if res.unified:
        raise InvalidArgument(f"cgroup v2 unified limits ({', '.join(sorted(res.unified))}) "
                              "are not supported by muelle-cri")
    return engine_pb2.UpdateContainerRequest(
        container=cid, memory=res.memory_limit_in_bytes,
        memory_swap=res.memory_swap_limit_in_bytes, cpu_quota=res.cpu_quota,
        cpu_period=res.cpu_period, cpu_shares=res.cpu_shares, cpuset_cpus=res.cpuset_cpus,
        cpuset_mems=res.cpuset_mems)


def namespace_mode(sandbox_id: str, sandbox: api_pb2.PodSandboxConfig, kind: str,
                   sc: api_pb2.LinuxContainerSecurityContext) -> str:
    """engine.v1 ipc_mode / pid_mode of a container of the pod. The pod's namespaces are
    its infra container's: POD joins them, NODE is the host's, CONTAINER its own (PID's
    default), TARGET another container's (ephemeral debug containers)."""
    pod = getattr(sandbox.linux.security_context.namespace_options, kind)
    if pod == api_pb2.NODE:
        return "host"
    own = getattr(sc.namespace_options, kind)
    if own == api_pb2.TARGET and kind == "pid":
        if not sc.namespace_options.target_id:
            raise InvalidArgument("namespace mode TARGET needs a target_id")
        return f"container:{sc.namespace_options.target_id}"
    if own == api_pb2.CONTAINER:
        return ""
    return f"container:{sandbox_id}"  # POD (the default for IPC)


def _propagation(m: api_pb2.Mount) -> str:
    if m.propagation not in _PROPAGATION:
        name = api_pb2.MountPropagation.Name(m.propagation) \
            if m.propagation in api_pb2.MountPropagation.values() else str(m.propagation)
        raise InvalidArgument(f"mount {m.container_path}: propagation {name} is not "
                              "supported")
    return _PROPAGATION[m.propagation]


def _text(value: bytes, what: str) -> str:
    """cri-api carries environment values as bytes; engine.v1 as UTF-8 text."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise InvalidArgument(f"{what} {value[:40]!r} is not UTF-8") from None


def _user(sc: api_pb2.LinuxContainerSecurityContext) -> str:
    user = str(sc.run_as_user.value) if sc.HasField("run_as_user") else sc.run_as_username
    if sc.HasField("run_as_group"):
        if not user:
            raise InvalidArgument("run_as_group needs run_as_user or run_as_username")
        user += f":{sc.run_as_group.value}"
    return user


def _seccomp(sc: api_pb2.LinuxContainerSecurityContext) -> list[str]:
    """The kubelet sends Unconfined unless the pod asks for RuntimeDefault (its default is
    unconfined, as containerd's is for a config without a profile)."""
    if not sc.HasField("seccomp"):
        return ["seccomp=unconfined"]
    kind = sc.seccomp.profile_type
    if kind == api_pb2.SecurityProfile.RuntimeDefault:
        return []
    if kind == api_pb2.SecurityProfile.Unconfined:
        return ["seccomp=unconfined"]
    try:
        with open(sc.seccomp.localhost_ref) as f:
            return [f"seccomp={f.read()}"]
    except OSError as exc:
        raise InvalidArgument(f"seccomp profile {sc.seccomp.localhost_ref!r}: "
                              f"{exc.strerror}") from None


class Containers:
    def __init__(self, engine: engine_pb2_grpc.EngineStub, logs: Logs, events: Events,
                 layer_fs: str = "") -> None:
        self.engine = engine
        self.logs = logs
        self.events = events
        self.layer_fs = layer_fs  # the image store's directory, where writable layers are
        self.rates = stats.CpuRates()

    def create(self, sandbox_ref: str, config: api_pb2.ContainerConfig) -> str:
        found = records.lookup(self.engine, sandbox_ref, "sandbox")
        if found is None:
            raise NotFound(f"pod sandbox {sandbox_ref!r} not found")
        sandbox, detail = found
        if not detail.state.running:
            raise FailedPrecondition(f"pod sandbox {sandbox.id} is not ready")
        req = engine_request(sandbox.id, sandbox.sandbox_config(), config)
        req.runtime = detail.runtime  # the pod's runtime handler's, as its infra container
        cid = self.engine.CreateContainer(req).id
        self.events.publish(api_pb2.CONTAINER_CREATED_EVENT, cid, sandbox.id)
        return cid

    def _get(self, ref: str) -> tuple[Record, engine_pb2.ContainerDetail]:
        found = records.lookup(self.engine, ref, "container")
        if found is None:
            raise NotFound(f"container {ref!r} not found")
        return found

    def running(self, ref: str) -> str:
        """The ID of the running container ``ref`` names (for Exec and Attach)."""
        record, detail = self._get(ref)
        if not detail.state.running:
            raise FailedPrecondition(f"container {record.id} is not running")
        return record.id

    def stdin_once(self, ref: str) -> bool:
        """Whether the container was created with stdin_once (Attach honours it)."""
        record, _ = self._get(ref)
        return record.container_config().stdin_once

    def start(self, ref: str) -> None:
        record, _ = self._get(ref)
        try:
            self.logs.follow(record.id, record.labels.get(records.LOG_PATH, ""),
                             lambda: self.engine.StartContainer(
                                 engine_pb2.StartContainerRequest(container=record.id)))
        except OSError as exc:
            raise FailedPrecondition(f"cannot create the log file of container {record.id}: "
                                     f"{exc.strerror}") from None
        self.events.publish(api_pb2.CONTAINER_STARTED_EVENT, record.id, record.sandbox_id)
        self.events.watch(record.id, record.sandbox_id)

    def update(self, ref: str, res: api_pb2.LinuxContainerResources) -> None:
        """New limits for a container (engine.v1 UpdateContainer: its cgroup at once).
        Fields left 0 keep their value, as in containerd."""
        record, _ = self._get(ref)
        self.engine.UpdateContainer(update_request(record.id, res))

    def reopen_log(self, ref: str) -> None:
        record, detail = self._get(ref)
        # A stopped container's follower may still be draining its last output: the
        # container's state, not the follower's, decides (as containerd does).
        if not detail.state.running or not self.logs.reopen(record.id):
            raise FailedPrecondition(f"container {record.id} is not running (or has no log "
                                     "path): there is no log to reopen")

    def resume(self) -> None:
        """After a start of muelle-cri: follow the output of containers that run, and
        watch them for their STOPPED event."""
        for record in records.list_all(self.engine, "container"):
            if record.state in ("running", "paused"):
                self.logs.follow(record.id, record.labels.get(records.LOG_PATH, ""))
                self.events.watch(record.id, record.sandbox_id)

    def stop(self, ref: str, timeout: int) -> None:
        """Stop with SIGTERM, SIGKILL after ``timeout`` seconds. Idempotent: stopping a
        stopped or unknown container is no error (the kubelet retries)."""
        found = records.lookup(self.engine, ref, "container")
        if found is None:
            return
        with contextlib.suppress(NotFound):  # removed meanwhile
            self.engine.StopContainer(engine_pb2.StopContainerRequest(
                container=found[0].id, timeout=max(0, timeout)))

    def remove(self, ref: str) -> None:
        found = records.lookup(self.engine, ref, "container")
        if found is None:
            return
        with contextlib.suppress(NotFound):  # removed meanwhile
            self.engine.RemoveContainer(engine_pb2.RemoveContainerRequest(
                container=found[0].id, force=True))
            self.events.publish(api_pb2.CONTAINER_DELETED_EVENT, found[0].id,
                                found[0].sandbox_id)

    def _matching(self, flt: api_pb2.ContainerFilter | api_pb2.ContainerStatsFilter
                  ) -> list[Record]:
        return [r for r in records.list_all(self.engine, "container")
                if r.id.startswith(flt.id) and r.sandbox_id.startswith(flt.pod_sandbox_id)
                and records.selected(r.container_config().labels, flt.label_selector)]

    def select(self, flt: api_pb2.ContainerFilter) -> list[api_pb2.Container]:
        out = []
        for record in self._matching(flt):
            item = to_container(record)
            if flt.HasField("state") and item.state != flt.state.state:
                continue
            out.append(item)
        return out

    def stats(self, flt: api_pb2.ContainerStatsFilter) -> list[api_pb2.ContainerStats]:
        chosen = self._matching(flt)
        if not chosen:
            return []
        taken = stats.sample(self.engine, self.layer_fs)
        self.rates.forget_except(taken.counters)
        return stats.of_containers(taken, chosen, self.rates)

    def stats_of(self, ref: str) -> api_pb2.ContainerStats:
        record, _ = self._get(ref)
        found = self.stats(api_pb2.ContainerStatsFilter(id=record.id))
        if not found:
            raise NotFound(f"container {ref!r} not found")
        return found[0]

    def status(self, ref: str, verbose_info: bool = False) -> api_pb2.ContainerStatusResponse:
        # With the runtime spec: its linux.resources are the container's current limits.
        found = records.lookup(self.engine, ref, "container", runtime_spec=True)
        if found is None:
            raise NotFound(f"container {ref!r} not found")
        record, detail = found
        config = record.container_config()
        st = detail.state
        state = _STATES.get(st.status, api_pb2.CONTAINER_UNKNOWN)
        if state == api_pb2.CONTAINER_EXITED:
            self.logs.wait(record.id, LOG_FLUSH_WAIT)
        out = api_pb2.ContainerStatus(
            id=record.id, metadata=config.metadata, state=state, created_at=record.created,
            started_at=records.created_ns(st.started_at) if st.started_at else 0,
            image=api_pb2.ImageSpec(image=record.labels.get(records.IMAGE, detail.image)),
            image_ref=detail.image_id, image_id=detail.image_id,
            labels=config.labels, annotations=config.annotations,
            log_path=record.labels.get(records.LOG_PATH, ""))
        if state == api_pb2.CONTAINER_EXITED:
            out.finished_at = records.created_ns(st.finished_at)
            out.exit_code = st.exit_code
            out.reason = ("OOMKilled" if st.oom_killed
                          else "Completed" if st.exit_code == 0 else "Error")
            out.message = st.error
        for m in config.mounts:
            out.mounts.append(m)
        current = verbose.resources(detail)
        if current is not None:
            out.resources.CopyFrom(current)
        info = verbose.container_info(record, detail, config) if verbose_info else {}
        return api_pb2.ContainerStatusResponse(status=out, info=info)

    def exec_sync(self, ref: str, cmd: list[str], timeout: int) -> api_pb2.ExecSyncResponse:
        record, detail = self._get(ref)
        if not cmd:
            raise InvalidArgument("exec needs a command")
        if not detail.state.running:
            raise FailedPrecondition(f"container {record.id} is not running")
        # The engine kills the process at the timeout and ends the stream once it is gone,
        # so nothing of a timed-out probe keeps running (a gRPC deadline would return
        # while the process still ran).
        start = types_pb2.ExecStart(container=record.id, cmd=cmd,
                                              timeout_seconds=max(0, min(timeout, 2**32 - 1)))
        inputs = iter([types_pb2.ExecInput(start=start),
                       types_pb2.ExecInput(close_stdin=True)])
        out = {"stdout": bytearray(), "stderr": bytearray()}
        exit_code = -1
        # A gRPC deadline too, later, for an engine that ignores timeout_seconds (older):
        # then the call fails and the gateway kills the process when the stream is gone.
        deadline = timeout + EXEC_GRACE if timeout > 0 else None
        killed = False
        try:
            for event in self.engine.ExecContainer(inputs, timeout=deadline):
                if event.HasField("output"):
                    out.get(event.output.stream, out["stdout"]).extend(event.output.data)
                elif event.HasField("exit"):
                    if event.exit.error and event.exit.exit_code == 0:
                        raise FailedPrecondition(event.exit.error)
                    killed = event.exit.timed_out
                    exit_code = event.exit.exit_code
        except DeadlineExceeded:
            killed = True
        if killed:
            raise DeadlineExceeded(f"command {cmd[0]!r} timed out after {timeout}s (killed)")
        return api_pb2.ExecSyncResponse(stdout=bytes(out["stdout"]), stderr=bytes(out["stderr"]),
                                        exit_code=exit_code)


def to_container(record: Record) -> api_pb2.Container:
    config = record.container_config()
    image = record.labels.get(records.IMAGE, "")
    return api_pb2.Container(
        id=record.id, pod_sandbox_id=record.sandbox_id, metadata=config.metadata,
        image=api_pb2.ImageSpec(image=image), image_ref=record.image_id,
        image_id=record.image_id,
        state=_STATES.get(record.state, api_pb2.CONTAINER_UNKNOWN),
        created_at=record.created, labels=config.labels, annotations=config.annotations)
