"""The shim's networking core: networks, and each container's place in them.

A container's network lives in ``<container dir>``: ``network.json`` (what was asked, and
what is wired now), ``netns`` (the pinned namespace), ``hosts``, ``hostname`` and
``resolv.conf`` (bind-mounted into it). Leases and network definitions live under
``<shim state>/network``. Everything is on disk or in the kernel, so a restarted shim
carries on where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.core import modes
from services.core.config import NetworkConfig
from services.core.logging import get_logger
from services.shim.background import Background, Done
from services.shim.network import files, iptables, links, lock, netns, ports, rules, subnets
from services.shim.network.defs import DEFAULT, Defs, Network, check_name
from services.shim.network.ipam import Pool
from services.shim.network.ports import Port
from services.shim.network.retire import Retiring
from services.shim.store import write_json
from vocab.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

INNER = "eth"  # interfaces inside: eth0, eth1, ...


@dataclass
class Request:
    """What a container asked for (ContainerSpec)."""

    mode: str
    hostname: str
    ports: list[Port] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    # resolv.conf parts that replace the host's (ContainerSpec.dns*).
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    # --add-host "name:ip"s; ip "host-gateway" is the default bridge's gateway.
    extra_hosts: list[str] = field(default_factory=list)
    # --link (container name or ID, alias)s: the alias names that container on the user
    # networks both are on.
    links: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Plan:
    """What config.json needs: the netns to join ("" = a new one, None = the host's),
    and the bind mounts of hosts, hostname and resolv.conf."""

    netns: str | None
    mounts: list[dict[str, Any]]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _write_json(path: Path, data: Any) -> None:
    # store.write_json: taking a network down must work on a full disk (stop, rm)
    write_json(path, data, durable=False, what=f"the container's network state ({path})")


def default_bridge(state_dir: Path, netcfg: NetworkConfig) -> str:
    """The bridge the default network uses: the one it was made with (recorded), else the
    configured one."""
    for net in Defs(state_dir / "network" / "networks").all():
        if net.name == DEFAULT:
            return net.bridge
    return netcfg.bridge


class Manager:
    def __init__(self, state_dir: Path, netcfg: NetworkConfig,
                 container_dir: Callable[[str], Path], lock_path: str = lock.PATH,
                 pid_of: Callable[[str], int] = lambda cid: 0) -> None:
        self.dir = modes.private_dir(state_dir / "network")  # root's alone (core/modes.py)
        self.cfg = netcfg
        self.defs = Defs(self.dir / "networks")
        self.container_dir = container_dir
        self.lock_path = lock_path
        self.pid_of = pid_of  # a running container's init pid, 0 if none
        self.log = get_logger(component="network")
        self.retiring = Retiring(self.dir / "retiring")
        # peek()'s copies of network.json; _writes counts _record calls, so a read that
        # raced a write is not kept
        self._peeked: dict[str, dict[str, Any]] = {}
        self._peeked_guard = threading.Lock()
        self._writes = 0

    # ---------------------------------------------------------------- networks

    def _pool(self, net: Network) -> Pool:
        return Pool(self.dir / "ipam" / f"{net.name}.json", net.subnet, net.gateway)

    def _default(self) -> Network:
        """The default network's definition (its subnet is set when its bridge is made)."""
        for net in self.defs.all():
            if net.name == DEFAULT:
                return net
        return Network(name=DEFAULT, id=hashlib.sha256(self.cfg.bridge.encode()).hexdigest(),
                       bridge=self.cfg.bridge, subnet=self.cfg.subnet, created=_now(),
                       builtin=True)

    def networks(self) -> list[Network]:
        user = [n for n in self.defs.all() if n.name != DEFAULT]
        return [self._default(), *user]

    def find(self, ref: str) -> Network:
        if ref == DEFAULT:
            return self._default()
        return self.defs.find(ref)

    def _taken(self, but: str = "") -> list[subnets.Net]:
        return [ipaddress.ip_network(n.subnet) for n in self.defs.all()
                if n.subnet and n.name != but]

    def create_network(self, name: str, subnet: str = "") -> Network:
        check_name(name)
        with lock.held(self.lock_path):
            if any(n.name == name for n in self.defs.all()):
                raise AlreadyExists(f"network with name {name} already exists")
            if subnet:
                try:
                    net_addr = ipaddress.ip_network(subnet, strict=True)
                except ValueError as exc:
                    raise InvalidArgument(f"invalid subnet {subnet!r}: {exc}") from None
                if net_addr.version != 4 or net_addr.prefixlen > 30:
                    raise InvalidArgument(f"invalid subnet {subnet!r}: an IPv4 /30 or larger")
                clash = subnets.overlapping(net_addr, self._taken())
                if clash is not None:
                    raise FailedPrecondition(
                        f"invalid pool request: subnet {subnet} overlaps with {clash}")
            else:
                net_addr = subnets.pick(self._taken())
            nid = secrets.token_hex(32)
            net = Network(name=name, id=nid, bridge="mu" + nid[:12], subnet=str(net_addr),
                          gateway=str(next(net_addr.hosts())), created=_now())
            self._bridge_up(net)
            try:
                self.defs.add(net)
            except BaseException:
                self._bridge_down(net)
                raise
        self.log.info("network created", network=name, subnet=net.subnet)
        return net

    def remove_network(self, ref: str) -> None:
        net = self.find(ref)
        if net.builtin:
            raise FailedPrecondition(f"{net.name} is a pre-defined network and cannot be removed")
        with lock.held(self.lock_path):
            users = self.members(net)
            if users:
                raise FailedPrecondition(
                    f"error while removing network: network {net.name} id {net.id} has "
                    f"active endpoints ({', '.join(c[:12] for c in users)})")
            self._bridge_down(net)
            self.defs.remove(net.name)
        self.log.info("network removed", network=net.name)

    def members(self, net: Network) -> list[str]:
        """IDs of the containers holding a lease on ``net``."""
        if not net.subnet:
            return []
        return sorted(set(self._pool(net).leases().values()))

    def _bridge_up(self, net: Network) -> None:
        links.ensure_bridge(net.bridge, net.gateway, net.prefixlen)
        rules.add(net.bridge, net.subnet)

    def _bridge_down(self, net: Network) -> None:
        rules.delete(net.bridge, net.subnet)
        links.delete(net.bridge)
        iptables.prune()

    def reconcile(self) -> None:
        """At start: every bridge of ours that is up has all its rules (a shim from before
        a rule existed, e.g. the isolation stages, made it without them)."""
        with lock.held(self.lock_path):
            for net in self.networks():
                if net.subnet and net.gateway and links.has_address(net.bridge, net.gateway):
                    rules.add(net.bridge, net.subnet)

    def close(self) -> None:
        """On a clean shim stop: the default bridge goes if no container uses it."""
        self.retiring.close()
        with lock.held(self.lock_path):
            net = self._default()
            # no lease of ours, and no veth of anyone's (an engine misconfigured to share
            # the bridge keeps it)
            if net.subnet and not self.members(net) and links.exists(net.bridge) \
                    and not links.bridge_ports(net.bridge):
                self._bridge_down(net)

    def _ensure_default(self) -> Network:
        """The default network with its bridge up; picks a subnet the first time."""
        net = self._default()
        if net.subnet and net.gateway and links.has_address(net.bridge, net.gateway):
            return net  # up, and its rules came with it (fast path of every create)
        if not net.subnet or (not links.exists(net.bridge) and subnets.overlapping(
                ipaddress.ip_network(net.subnet), self._taken(but=DEFAULT)) is not None):
            if self.cfg.subnet:
                net.subnet = self.cfg.subnet
            else:
                net.subnet = str(subnets.pick(self._taken(but=DEFAULT)))
        subnet = ipaddress.ip_network(net.subnet)
        net.gateway = str(next(subnet.hosts()))
        self.defs.save(net)
        self._bridge_up(net)
        return net

    def _ensure_user(self, ref: str) -> Network:
        """A user network with its bridge up (made again after a reboot)."""
        net = self.find(ref)
        if not links.has_address(net.bridge, net.gateway):
            self._bridge_up(net)
        return net

    # ---------------------------------------------------------------- containers

    def _state_file(self, cid: str) -> Path:
        return self.container_dir(cid) / "network.json"

    def read(self, cid: str) -> dict[str, Any]:
        try:
            data = json.loads(self._state_file(cid).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _record(self, cid: str, state: dict[str, Any]) -> None:
        """Every write of network.json comes here (this manager is its one writer)."""
        try:
            _write_json(self._state_file(cid), state)
        finally:
            with self._peeked_guard:
                self._peeked.pop(cid, None)
                self._writes += 1

    def peek(self, cid: str) -> dict[str, Any]:
        """read() for callers that only look (the shim's List): the last one read, kept
        until _record writes the file again or forget() drops it. Not to be changed."""
        with self._peeked_guard:
            state, writes = self._peeked.get(cid), self._writes
        if state is None:
            state = self.read(cid)
            with self._peeked_guard:
                if writes == self._writes:
                    self._peeked[cid] = state
        return state

    def forget(self, cid: str) -> None:
        """The container's dir is gone."""
        with self._peeked_guard:
            self._peeked.pop(cid, None)

    def prepare(self, cid: str, req: Request) -> Plan:
        """Check the request, record it, write the files; nothing is wired yet."""
        cdir = self.container_dir(cid)
        mode = req.mode or self.cfg.default_mode
        checked = [ports.check(p) for p in req.ports]
        peer = network = ""
        if mode in ("none", "host") or mode.startswith("container:"):
            if checked:
                raise InvalidArgument(f"published ports need a bridge network, not {mode!r}")
            if mode.startswith("container:"):
                peer = mode.split(":", 1)[1]
                if not self._state_file(peer).exists():
                    raise NotFound(f"no such container: {peer}")
        else:  # NOT_FOUND for an unknown network, before anything is made
            network = self.find(mode).name
        extra = self._extra_hosts(req.extra_hosts)
        # [name, alias, network]: a link holds on the network it was given for, as dockerd's
        # (an endpoint's); those given at create are for the container's own network
        linked = [[name, alias, network] for name, alias in req.links] if network else []
        state = {"mode": mode, "hostname": req.hostname, "aliases": req.aliases,
                 "ports": [p.to_dict() for p in checked], "endpoints": {},
                 **({"extra_hosts": extra} if extra else {}),
                 **({"links": linked} if linked else {})}
        self._record(cid, state)
        host_name = socket.gethostname() if mode == "host" else req.hostname
        (cdir / "hostname").write_text(host_name + "\n")
        resolv = files.host_resolv()
        resolv = resolv if mode == "host" else files.resolv_conf(resolv)
        if req.dns or req.dns_search or req.dns_options:
            resolv = files.with_dns(resolv, req.dns, req.dns_search, req.dns_options)
        (cdir / "resolv.conf").write_text(resolv)
        if mode == "host" and not extra:
            try:
                hosts_text = Path("/etc/hosts").read_text()
            except OSError:
                hosts_text = files.DEFAULT_HOSTS
        else:  # dockerd 20.10 writes its own file with the host's network too then
            hosts_text = files.hosts([], [], extra)
        (cdir / "hosts").write_text(hosts_text)
        mounts = []
        for name in ("hosts", "hostname", "resolv.conf"):
            source = cdir / name
            if peer and name != "hostname":
                source = self.container_dir(peer) / name
            mounts.append({"destination": f"/etc/{name}", "type": "bind",
                           "source": str(source), "options": ["rbind", "rprivate"]})
        if mode == "host":
            return Plan(None, mounts)
        if mode == "none":
            return Plan("", mounts)
        if peer:
            return Plan(self._netns_of(peer), mounts)
        return Plan(str(cdir / "netns"), mounts)

    def _extra_hosts(self, entries: list[str]) -> list[tuple[str, str]]:
        """(ip, name) of each --add-host "name:ip" (checked by the gateway), host-gateway
        as the default bridge's gateway (dockerd's HostGatewayIP: docker0's address),
        brought up for it if it is not yet."""
        out = []
        for entry in entries:
            name, _, ip = entry.partition(":")
            if ip == "host-gateway":
                gateway = self._default().gateway
                if not gateway:
                    with lock.held(self.lock_path):
                        gateway = self._ensure_default().gateway
                ip = gateway
            out.append((ip, name))
        return out

    def _netns_of(self, peer: str, depth: int = 0) -> str | None:
        """The namespace to join for ``container:<peer>`` (None = the host's)."""
        other = self.read(peer)
        mode = str(other.get("mode", ""))
        if mode == "host":
            return None
        if mode.startswith("container:") and depth < 8:
            return self._netns_of(mode.split(":", 1)[1], depth + 1)
        pinned = self.container_dir(peer) / "netns"
        if netns.is_pinned(str(pinned)):
            return str(pinned)
        pid = self.pid_of(peer)  # "none": the runtime made it, it lives with the init
        if pid > 0:
            return f"/proc/{pid}/ns/net"
        raise FailedPrecondition(f"cannot join the network of container {peer[:12]}: "
                                 "it is not running")

    def up(self, cid: str) -> None:
        """Wire a bridge-mode container: netns, veth, address, route, ports, hosts."""
        try:
            self.up_background(cid).wait()
        except BaseException:
            self.down(cid)
            raise

    def up_background(self, cid: str) -> Background:
        """up(), with the netns pinned before it returns (config.json joins it by path) and
        the rest (veth, address, route, ports, hosts: ~10 ms of netlink) on a thread, so it
        overlaps the runtime's create. wait() joins it and raises its error; the caller
        undoes it with down() then (not the thread: the runtime may be joining the netns)."""
        state = self.read(cid)
        mode = state.get("mode", "")
        if not state or mode in ("none", "host") or mode.startswith("container:"):
            return Done()
        path = str(self.container_dir(cid) / "netns")
        if state.get("endpoints"):
            if netns.is_pinned(path):
                return Done()  # wired already (a created container, or a restarted shim asks)
            self.down(cid)  # recorded, but the kernel forgot (a reboot): wire it anew
            state = self.read(cid)
        userns = str(self.container_dir(cid) / "userns")
        netns.create(path, userns if netns.is_pinned(userns) else "")
        return Background(lambda: self._attach(cid, state, mode, path, primary=True),
                          name=f"net-up-{cid[:12]}")

    def _attach(self, cid: str, state: dict[str, Any], name: str, path: str,
                primary: bool, aliases: list[str] | None = None) -> None:
        with lock.held(self.lock_path):
            net = self._ensure_default() if name == DEFAULT else self._ensure_user(name)
            if net.name in state["endpoints"]:
                raise FailedPrecondition(
                    f"container {cid[:12]} is already attached to network {net.name}")
            ifname = f"{INNER}{len(state['endpoints'])}"
            veth = "ve" + hashlib.sha256(f"{cid}/{net.id}".encode()).hexdigest()[:11]
            ip = self._pool(net).allocate(cid)
            endpoint = {"network": net.name, "network_id": net.id, "bridge": net.bridge,
                        "ip": ip, "prefixlen": net.prefixlen, "gateway": net.gateway,
                        "veth": veth, "ifname": ifname,
                        # once each: a reconnect (Compose) names the container's own again
                        "aliases": list(dict.fromkeys([*state.get("aliases", []),
                                                       *(aliases or [])]))}
            state["endpoints"][net.name] = endpoint
            self._record(cid, state)  # recorded first: down() undoes it
            self.retiring.settle(veth)  # the same container's last run may be deleting it
            links.add_veth(veth, net.bridge, path, ifname)
            links.configure_inner(path, ifname, ip, net.prefixlen,
                                  net.gateway if primary else None)
            if primary and state.get("ports"):
                chosen = ports.resolve([Port(**p) for p in state["ports"]])
                state["published"] = [p.to_dict() for p in chosen]
                self._record(cid, state)
                ports.publish(chosen, net.bridge, ip)
            self._refresh_hosts(net)
        get_logger(container=cid[:12]).info("network attached", network=net.name, ip=ip)

    def down(self, cid: str) -> None:
        """Undo up(): rules, veths, leases, the netns; the request stays for a restart."""
        state = self.read(cid)
        if not state:
            return
        path = str(self.container_dir(cid) / "netns")
        # The veths go first and outside the host-wide lock, each off its bridge at once and
        # deleted on a thread (retire.py: a delete waits ~20 ms for RCU grace periods). Each
        # veth is this container's own; its lease is released (below) only once it is off.
        for endpoint in state.get("endpoints", {}).values():
            self.retiring.retire(endpoint["veth"])
        with lock.held(self.lock_path):
            for name in list(state.get("endpoints", {})):
                self._detach_locked(cid, state, name)
            for net in self.networks():  # a lease a crash left unrecorded
                if net.subnet:
                    self._pool(net).release(cid)
            state.pop("published", None)
            self._record(cid, state)
        netns.remove(path)

    def _detach_locked(self, cid: str, state: dict[str, Any], name: str) -> None:
        endpoint = state["endpoints"][name]
        if state.get("published") and endpoint["ifname"] == f"{INNER}0":
            ports.unpublish([Port(**p) for p in state["published"]], endpoint["bridge"],
                            endpoint["ip"])
            state.pop("published", None)
        self.retiring.retire(endpoint["veth"])
        try:
            net = self.find(name)
        except NotFound:
            net = None
        if net is not None and net.subnet:
            self._pool(net).release(cid)
        del state["endpoints"][name]
        self._record(cid, state)
        if net is None:
            return
        # The default bridge stays up when idle (like docker0): deleting a netdev waits
        # for the kernel's RCU grace periods, which would slow every lone `run --rm`.
        self._refresh_hosts(net)

    def connect(self, cid: str, name: str, aliases: list[str],
                more_links: list[tuple[str, str]] | None = None) -> None:
        state = self.read(cid)
        mode = state.get("mode", "")
        if not state:
            raise NotFound(f"no such container: {cid}")
        if mode in ("none", "host") or mode.startswith("container:"):
            raise FailedPrecondition(f"container {cid[:12]} uses network mode {mode!r}: "
                                     "it cannot be connected to another network")
        path = str(self.container_dir(cid) / "netns")
        if not netns.is_pinned(path):
            raise FailedPrecondition(f"container {cid[:12]} is not running")
        net = self.find(name)
        # With no network left (Compose disconnects a created container from its network
        # and connects it again, with aliases), this one is the primary: the default route
        # and the published ports go with it, as with dockerd, where a created container's
        # endpoints are only configuration until it starts.
        primary = not state.get("endpoints")
        if more_links:  # recorded with the endpoint by _attach, written into hosts by it
            known = [list(link) for link in state.get("links", [])]
            state["links"] = known + [[name, alias, net.name] for name, alias in more_links
                                      if [name, alias, net.name] not in known]
        self._attach(cid, state, net.name, path, primary=primary, aliases=aliases)

    def disconnect(self, cid: str, name: str) -> None:
        state = self.read(cid)
        net = self.find(name)
        if net.name not in state.get("endpoints", {}):
            raise FailedPrecondition(
                f"container {cid[:12]} is not connected to network {net.name}")
        with lock.held(self.lock_path):
            self._detach_locked(cid, state, net.name)

    def _refresh_hosts(self, net: Network) -> None:
        """Every member of a user network lists the others by name, alias and short ID.

        A maintained /etc/hosts rather than an embedded DNS server: no process to keep
        alive per network, it survives shim restarts, and any libc resolves it.
        """
        for cid in self.members(net):
            self._write_hosts(cid)

    def _write_hosts(self, cid: str) -> None:
        state = self.read(cid)
        if not state:
            return
        own, peers = [], []
        for name, ep in state.get("endpoints", {}).items():
            own.append((ep["ip"], [state.get("hostname") or cid[:12]]))
            if name == DEFAULT:
                continue  # like docker0: no name resolution on the default bridge
            with contextlib.suppress(NotFound):
                net = self.find(name)
                for other in self.members(net):
                    if other == cid:
                        continue
                    theirs = self.read(other).get("endpoints", {}).get(name)
                    if theirs:
                        names = [*theirs.get("aliases", []), other[:12]]
                        names += [alias for linked, alias, on in state.get("links", [])
                                  if on == name and linked in (
                                      other, other[:12], *theirs.get("aliases", [])[:1])]
                        peers.append((theirs["ip"], list(dict.fromkeys(names))))
        extra = [(str(ip), str(name)) for ip, name in state.get("extra_hosts", [])]
        hosts = self.container_dir(cid) / "hosts"
        if hosts.exists():
            files.write_in_place(hosts, files.hosts(own, peers, extra))

    def info(self, cid: str) -> dict[str, Any]:
        """Endpoints and published ports, as recorded."""
        return self.read(cid)
