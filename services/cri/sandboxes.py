"""Pod sandboxes: an infra ("pause") container per pod, whose network the pod's containers
join (engine network mode ``container:<sandbox id>``).

Why an infra container and not namespaces pinned by the shim: muelle-cri is a client of
engine.v1 (through the gateway, like any other front door) and engine.v1 already shares a
network namespace with ``container:<id>``; the shim resolves it to the namespace it pinned
for the infra container (services/shim/network/netns.py), so the pod's network (address,
published ports, /etc/hosts, resolv.conf) lives exactly as long as the sandbox, and a
container of the pod that restarts finds it again. It is also what the kubelet expects to
see (a sandbox has a state of its own: READY while the infra process runs). Pinned
namespaces would need a new shim contract for "a namespace with no container in it" and
would work only on the shim's host.
"""

from __future__ import annotations

import contextlib
import socket

from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc
from muelle.types.v1 import types_pb2

from services.core.config import CriConfig
from services.core.logging import get_logger
from services.cri import records, stats, verbose
from services.cri.cni import Cni, NetworkList
from services.cri.events import Events
from services.cri.handlers import Handlers
from services.cri.records import Record
from vocab.errors import FailedPrecondition, InvalidArgument, NotFound

HOST_NAME_MAX = 64  # what sethostname(2) takes
_PROTOCOLS = {api_pb2.TCP: "tcp", api_pb2.UDP: "udp"}


def host_network(config: api_pb2.PodSandboxConfig) -> bool:
    return config.linux.security_context.namespace_options.network == api_pb2.NODE


def pod_hostname(config: api_pb2.PodSandboxConfig) -> str:
    """The pod's hostname; the node's when the config names none (containerd's rule: the
    kubelet always names one, crictl and critest often do not)."""
    name = config.hostname or socket.gethostname()
    if len(name.encode()) > HOST_NAME_MAX:
        raise InvalidArgument(f"pod hostname {name!r} is longer than {HOST_NAME_MAX} bytes")
    return name


class Sandboxes:
    def __init__(self, engine: engine_pb2_grpc.EngineStub, cfg: CriConfig,
                 events: Events, layer_fs: str = "", cni: Cni | None = None) -> None:
        self.engine = engine
        self.cfg = cfg
        self.handlers = Handlers(cfg.runtime_handlers)
        self.events = events
        self.layer_fs = layer_fs  # the image store's directory, where writable layers are
        self.cni = cni  # pod networks by CNI plugins ([cri] cni_conf_dir), else the shim's
        self.rates = stats.CpuRates()

    def run(self, config: api_pb2.PodSandboxConfig, handler: str = "") -> str:
        """Start the pod's infra container with the runtime of ``handler``."""
        runtime = self.handlers.runtime(handler)
        meta = config.metadata
        if not meta.name or not meta.namespace or not meta.uid:
            raise InvalidArgument("pod sandbox metadata needs a name, namespace and uid")
        ports = []
        for pm in config.port_mappings:
            if pm.protocol not in _PROTOCOLS:
                raise InvalidArgument(f"port mapping protocol {api_pb2.Protocol.Name(pm.protocol)} "
                                      "is not supported (TCP and UDP are)")
            if pm.host_port:  # CRI: 0 = not published on the host
                ports.append(types_pb2.NetworkPort(
                    container_port=pm.container_port, protocol=_PROTOCOLS[pm.protocol],
                    host_ip=pm.host_ip, host_port=pm.host_port))
        network = None
        if self.cni is not None and not host_network(config):
            network = self.cni.network()  # a broken config fails before anything is made
            ports = []  # the portmap plugin publishes them (cni.port_mappings)
        self._ensure_image()
        ns = config.linux.security_context.namespace_options
        req = engine_pb2.CreateContainerRequest(
            image=self.cfg.sandbox_image,
            name=records.engine_name("k8s", "POD", meta.name, meta.namespace, meta.uid,
                                     str(meta.attempt)),
            labels={records.KIND: "sandbox", records.CONFIG: records.encode(config),
                    records.HANDLER: handler},
            runtime=runtime,
            # CNI: an empty namespace (loopback only) that the plugins wire.
            network_mode="host" if host_network(config) else "none" if network else "",
            hostname="" if host_network(config) else pod_hostname(config),
            ports=ports,
            dns=config.dns_config.servers, dns_search=config.dns_config.searches,
            dns_options=config.dns_config.options,
            # On the infra container: its network and IPC namespaces are the pod's.
            sysctls=config.linux.sysctls,
            # Shareable: the pod's containers share its /dev/shm with its IPC namespace.
            ipc_mode="host" if ns.ipc == api_pb2.NODE else "shareable",
            pid_mode="host" if ns.pid == api_pb2.NODE else "",
            # A pod on the node's network has the node's hostname too (containerd).
            uts_mode="host" if host_network(config) else "",
            # The kubelet's pod cgroup (kubepods/<qos>/pod<uid>): the pod's containers
            # go there too.
            cgroup_parent=config.linux.cgroup_parent,
            # The kubelet stops pods with StopPodSandbox after their containers: the infra
            # process has nothing to save, a SIGKILL is its stop.
            stop_timeout=0,
        )
        if self.cfg.sandbox_command:
            req.entrypoint.values.extend(self.cfg.sandbox_command)
            req.cmd.SetInParent()
        sid = self.engine.CreateContainer(req).id
        try:
            self.engine.StartContainer(engine_pb2.StartContainerRequest(container=sid))
            if network is not None:
                self._attach(sid, config, network)
        except BaseException:
            self._remove_quietly(sid)
            raise
        # Both at once: a sandbox that failed to start is gone, never seen as created.
        self.events.publish(api_pb2.CONTAINER_CREATED_EVENT, sid, sid)
        self.events.publish(api_pb2.CONTAINER_STARTED_EVENT, sid, sid)
        self.events.watch(sid, sid)
        get_logger().info("pod sandbox running", sandbox=sid, pod=meta.name,
                          namespace=meta.namespace)
        return sid

    def _attach(self, sid: str, config: api_pb2.PodSandboxConfig,
                network: NetworkList) -> None:
        """ADD the running infra container's namespace to the CNI network."""
        assert self.cni is not None
        detail = self.engine.InspectContainer(engine_pb2.InspectContainerRequest(container=sid))
        if not detail.state.running or detail.state.pid <= 0:
            raise FailedPrecondition(f"pod sandbox {sid[:12]} exited before its network "
                                     f"was set up: {detail.state.error or 'no process'}")
        self.cni.attach(sid, detail.state.pid, config, network)

    def _ensure_image(self) -> None:
        try:
            self.engine.InspectImage(engine_pb2.InspectImageRequest(
                reference=self.cfg.sandbox_image))
        except NotFound:
            for _ in self.engine.PullImage(types_pb2.PullRequest(
                    reference=self.cfg.sandbox_image)):
                pass

    def _remove_quietly(self, cid: str) -> None:
        try:
            self.engine.RemoveContainer(engine_pb2.RemoveContainerRequest(container=cid,
                                                                          force=True))
        except Exception as exc:  # noqa: BLE001 - the first error is the one to report
            get_logger().warning("cannot remove after a failed start", container=cid,
                                 error=str(exc))

    def members(self, sid: str) -> list[Record]:
        return [r for r in records.list_all(self.engine, "container") if r.sandbox_id == sid]

    def stop(self, ref: str) -> None:
        """Stop every container of the pod, then its infra container. Idempotent: a sandbox
        that is stopped, or gone, is no error (the kubelet retries)."""
        found = records.lookup(self.engine, ref, "sandbox")
        if found is None:
            self._detach_orphan(ref)
            return
        record, _ = found
        for member in self.members(record.id):
            if member.state in ("running", "paused"):
                self._stop(member.id, 0)
        self._stop(record.id, 0)
        if self.cni is not None:  # containerd's order: the infra container, then the network
            self.cni.detach(record.id)

    def _detach_orphan(self, sid: str) -> None:
        """DEL a pod whose infra container went by another way (`muelle rm -f`, a lost
        engine root) but whose network is still attached: the kubelet's stop and remove
        of it are the only calls that will ever come."""
        if self.cni is not None and self.cni.record(sid) is not None:
            self.cni.detach(sid)

    def _stop(self, cid: str, timeout: int) -> None:
        with contextlib.suppress(NotFound):  # removed meanwhile
            self.engine.StopContainer(engine_pb2.StopContainerRequest(container=cid,
                                                                      timeout=timeout))

    def remove(self, ref: str) -> None:
        """Remove the pod's containers and its infra container (stopping what runs).
        Idempotent like stop."""
        found = records.lookup(self.engine, ref, "sandbox")
        if found is None:
            self._detach_orphan(ref)
            return
        record, _ = found
        for member in self.members(record.id):
            self._remove(member.id, record.id)
        if self.cni is not None:  # a no-op after stop; DEL before the record goes
            self.cni.detach(record.id)
        self._remove(record.id, record.id)

    def resume(self) -> None:
        """After a start of muelle-cri: watch running sandboxes for their STOPPED event."""
        for record in records.list_all(self.engine, "sandbox"):
            if record.state in ("running", "paused"):
                self.events.watch(record.id, record.id)

    def _remove(self, cid: str, sandbox_id: str) -> None:
        with contextlib.suppress(NotFound):  # removed meanwhile
            self.engine.RemoveContainer(engine_pb2.RemoveContainerRequest(container=cid,
                                                                          force=True))
            self.events.publish(api_pb2.CONTAINER_DELETED_EVENT, cid, sandbox_id)

    def address(self, ref: str) -> str:
        """Where the pod's ports are reached from this host: its IP on the shim's bridge,
        or loopback for a pod on the host's network."""
        found = records.lookup(self.engine, ref, "sandbox")
        if found is None:
            raise NotFound(f"pod sandbox {ref!r} not found")
        record, detail = found
        if not detail.state.running:
            raise FailedPrecondition(f"pod sandbox {record.id} is not ready")
        if host_network(record.sandbox_config()):
            return "127.0.0.1"
        if self.cni is not None and (ips := self.cni.ips(record.id)):
            return ips[0]
        if not detail.networks or not detail.networks[0].ip_address:
            raise FailedPrecondition(f"pod sandbox {record.id} has no address")
        return detail.networks[0].ip_address

    def status(self, ref: str, verbose_info: bool = False
               ) -> api_pb2.PodSandboxStatusResponse:
        found = records.lookup(self.engine, ref, "sandbox", runtime_spec=verbose_info)
        if found is None:
            raise NotFound(f"pod sandbox {ref!r} not found")
        record, detail = found
        config = record.sandbox_config()
        status = to_sandbox(record, config)
        out = api_pb2.PodSandboxStatus(
            id=status.id, metadata=status.metadata, state=status.state,
            created_at=status.created_at, labels=status.labels,
            annotations=status.annotations, runtime_handler=status.runtime_handler)
        if self.cni is not None and (ips := self.cni.ips(record.id)):
            # From the ADD result while the pod is attached (containerd: until stop).
            out.network.ip = ips[0]
            out.network.additional_ips.extend(api_pb2.PodIP(ip=ip) for ip in ips[1:])
        elif detail.state.running and not host_network(config) and detail.networks:
            out.network.ip = detail.networks[0].ip_address
        ns = config.linux.security_context.namespace_options
        out.linux.namespaces.options.CopyFrom(api_pb2.NamespaceOption(
            network=ns.network, pid=ns.pid, ipc=ns.ipc))
        info = verbose.sandbox_info(record, detail, config) if verbose_info else {}
        return api_pb2.PodSandboxStatusResponse(status=out, info=info)

    def stats(self, flt: api_pb2.PodSandboxStatsFilter) -> list[api_pb2.PodSandboxStats]:
        chosen = [r for r in records.list_all(self.engine, "sandbox")
                  if r.id.startswith(flt.id)
                  and records.selected(r.sandbox_config().labels, flt.label_selector)]
        if not chosen:
            return []
        taken = stats.sample(self.engine, self.layer_fs)
        self.rates.forget_except(taken.counters)
        containers = records.list_all(self.engine, "container")
        return [stats.of_pod(taken, r, [c for c in containers if c.sandbox_id == r.id],
                             self.rates)
                for r in chosen]

    def stats_of(self, ref: str) -> api_pb2.PodSandboxStats:
        found = records.lookup(self.engine, ref, "sandbox")
        if found is None:
            raise NotFound(f"pod sandbox {ref!r} not found")
        return self.stats(api_pb2.PodSandboxStatsFilter(id=found[0].id))[0]

    def select(self, flt: api_pb2.PodSandboxFilter) -> list[api_pb2.PodSandbox]:
        out = []
        for record in records.list_all(self.engine, "sandbox"):
            if flt.id and not record.id.startswith(flt.id):
                continue
            sandbox = to_sandbox(record, record.sandbox_config())
            if flt.HasField("state") and sandbox.state != flt.state.state:
                continue
            if not records.selected(sandbox.labels, flt.label_selector):
                continue
            out.append(sandbox)
        return out


def to_sandbox(record: Record, config: api_pb2.PodSandboxConfig) -> api_pb2.PodSandbox:
    ready = record.state in ("running", "paused")
    return api_pb2.PodSandbox(
        id=record.id, metadata=config.metadata,
        state=api_pb2.SANDBOX_READY if ready else api_pb2.SANDBOX_NOTREADY,
        created_at=record.created, labels=config.labels, annotations=config.annotations,
        runtime_handler=record.labels.get(records.HANDLER, ""))
