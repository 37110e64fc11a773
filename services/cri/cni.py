"""Pod networks through CNI plugins, invoked per pod as containerd's CRI does.

With ``[cri] cni_conf_dir`` set, a pod's infra container is made with engine network mode
``none`` (an empty namespace, loopback only) and, once it runs, this module pins that
namespace at ``<run>/cri/netns/<sandbox id>`` and runs the plugins of the first network
configuration of the directory (lexical order; ``.conflist``, or ``.conf``/``.json`` with
one plugin) on it: ADD with ``CNI_CONTAINERID`` = the sandbox ID, ``CNI_NETNS`` = the pin,
``CNI_IFNAME=eth0``, ``CNI_PATH`` = ``cni_bin_dir``, each plugin's result handed to the
next as ``prevResult`` (the CNI spec's chaining). The sandbox's port mappings go to the
plugins that declare the ``portMappings`` capability (portmap), in ``runtimeConfig``.

Why a pin of our own: DEL must reach the same namespace even when the infra process is
gone (StopPodSandbox kills it first, or it died); ``/proc/<pid>/ns/net`` of a dead pid
could name another process's namespace once the pid is reused. The pin keeps it alive
until DEL is done, as containerd's ``/var/run/netns/cni-*`` does.

The configuration and the final result are kept per sandbox (``<state>/cni/<id>.json``,
libcni's result cache): DEL runs the same plugins in reverse with the cached result as
``prevResult`` even when the directory changed meanwhile, and PodSandboxStatus reports
the result's addresses. DEL of a sandbox with no record is a no-op (the kubelet retries
stop and remove).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s.cri.v1 import api_pb2

from services.core.logging import get_logger
from services.runtime.api import linux
from services.shim import pinned
from vocab.errors import FailedPrecondition, Internal, InvalidArgument

IFNAME = "eth0"
CONFIG_SUFFIXES = (".conflist", ".conf", ".json")
PLUGIN_TIMEOUT = 60.0  # seconds; a plugin that hangs must not hang RunPodSandbox forever
_ID = re.compile(r"[0-9a-f]{12,64}")  # an engine container ID
_PROTOCOLS = {api_pb2.TCP: "tcp", api_pb2.UDP: "udp", api_pb2.SCTP: "sctp"}


@dataclass(frozen=True)
class NetworkList:
    """One network configuration list: its name, CNI version and plugins, as loaded."""

    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cniVersion": self.cni_version, "plugins": self.plugins,
                "source": self.source}


def parse(text: str, source: str) -> NetworkList:
    """A network configuration (list) file's text, checked; FAILED_PRECONDITION says what is
    wrong with it (the operator's file, not the caller's request)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FailedPrecondition(f"CNI config {source}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FailedPrecondition(f"CNI config {source}: not a JSON object")
    if "plugins" in data:
        plugins = data["plugins"]
    elif "type" in data:  # a .conf: one plugin, its own keys at the top
        plugins = [{k: v for k, v in data.items() if k not in ("name", "cniVersion")}]
    else:
        raise FailedPrecondition(f"CNI config {source}: neither `plugins` nor `type`")
    name, version = data.get("name"), data.get("cniVersion", "")
    if not isinstance(name, str) or not name:
        raise FailedPrecondition(f"CNI config {source}: no network `name`")
    if not isinstance(version, str):
        raise FailedPrecondition(f"CNI config {source}: `cniVersion` is not a string")
    if not isinstance(plugins, list) or not plugins:
        raise FailedPrecondition(f"CNI config {source}: `plugins` is empty")
    for plugin in plugins:
        kind = plugin.get("type") if isinstance(plugin, dict) else None
        if not isinstance(kind, str) or not kind or "/" in kind or kind.startswith("."):
            raise FailedPrecondition(f"CNI config {source}: a plugin without a valid `type`")
    return NetworkList(name, version, plugins, source)


def load(conf_dir: Path) -> NetworkList:
    """The first network configuration of ``conf_dir`` in lexical order (containerd's and
    libcni's rule)."""
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith(CONFIG_SUFFIXES))
    except OSError as exc:
        raise FailedPrecondition(f"CNI config dir {conf_dir}: {exc.strerror}") from None
    if not names:
        raise FailedPrecondition(f"no CNI network config in {conf_dir} "
                                 f"(a {'/'.join(CONFIG_SUFFIXES)} file)")
    path = conf_dir / names[0]
    try:
        text = path.read_text()
    except OSError as exc:
        raise FailedPrecondition(f"CNI config {path}: {exc.strerror}") from None
    return parse(text, str(path))


def port_mappings(config: api_pb2.PodSandboxConfig) -> list[dict[str, Any]]:
    """The sandbox's published ports in portmap's ``runtimeConfig.portMappings`` shape
    (containerd's: only those with a host port)."""
    return [{"hostPort": pm.host_port, "containerPort": pm.container_port,
             "protocol": _PROTOCOLS.get(pm.protocol, "tcp"), "hostIP": pm.host_ip}
            for pm in config.port_mappings if pm.host_port]


def cni_args(sid: str, config: api_pb2.PodSandboxConfig) -> str:
    """CNI_ARGS as containerd sets them (plugins that do not know a key ignore it)."""
    meta = config.metadata
    return ";".join(["IgnoreUnknown=1", f"K8S_POD_NAMESPACE={meta.namespace}",
                     f"K8S_POD_NAME={meta.name}", f"K8S_POD_INFRA_CONTAINER_ID={sid}",
                     f"K8S_POD_UID={meta.uid}"])


def addresses(result: dict[str, Any]) -> list[str]:
    """The IPs of a CNI result (0.3.0 and later: ``ips``; 0.2.0: ``ip4``/``ip6``), without
    their prefix length, IPv4 first as the kubelet expects the pod's primary IP."""
    found = [ip.get("address", "") for ip in result.get("ips") or [] if isinstance(ip, dict)]
    for key in ("ip4", "ip6"):
        old = result.get(key)
        if isinstance(old, dict):
            found.append(old.get("ip", ""))
    out = []
    for text in found:
        with contextlib.suppress(ValueError):
            out.append(ipaddress.ip_interface(text).ip)
    return [str(ip) for ip in sorted(out, key=lambda ip: ip.version)]


class Cni:
    """Attach and detach pods to the network of ``conf_dir``'s first configuration."""

    def __init__(self, conf_dir: Path, bin_dirs: str, state_dir: Path, run_dir: Path) -> None:
        self.conf_dir = conf_dir
        self.bin_dirs = bin_dirs  # CNI_PATH: directories separated by ':'
        self.results = state_dir / "cni"
        self.pins = run_dir / "cri" / "netns"
        # One change per sandbox at a time: the kubelet may retry StopPodSandbox while a
        # RemovePodSandbox of the same pod runs.
        self._lock = threading.Lock()
        self._busy: dict[str, threading.Lock] = {}

    def ready(self) -> tuple[bool, str]:
        """Whether a network configuration is there (the CRI's NetworkReady), and why not."""
        try:
            self.network()
        except FailedPrecondition as exc:
            return False, str(exc)
        return True, ""

    def _sandbox_lock(self, sid: str) -> threading.Lock:
        with self._lock:
            return self._busy.setdefault(sid, threading.Lock())

    def _record_path(self, sid: str) -> Path:
        if not _ID.fullmatch(sid):  # a caller's string never names another file
            raise InvalidArgument(f"not a pod sandbox ID: {sid[:80]!r}")
        return self.results / f"{sid}.json"

    def record(self, sid: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._record_path(sid).read_text())
        except (OSError, ValueError, InvalidArgument):
            return None
        return data if isinstance(data, dict) else None

    def ips(self, sid: str) -> list[str]:
        """The pod's addresses from its ADD result (empty: not attached)."""
        record = self.record(sid)
        return addresses(record.get("result") or {}) if record else []

    def network(self) -> NetworkList:
        """The network pods are attached to now (checked before a pod is made)."""
        return load(self.conf_dir)

    def attach(self, sid: str, pid: int, config: api_pb2.PodSandboxConfig,
               network: NetworkList) -> list[str]:
        """Pin the namespace of the infra process ``pid`` and ADD it to ``network``; on a
        failure, undo what was done (DEL, unpin) and raise. Returns the pod's IPs."""
        started = time.monotonic()
        with self._sandbox_lock(sid):
            pin = self._pin(sid, pid)
            record = {"network": network.to_dict(), "netns": pin,
                      "args": cni_args(sid, config), "portMappings": port_mappings(config),
                      "result": None}
            # Written before ADD: a muelle-cri killed half-way still knows to DEL.
            self._write(sid, record)
            try:
                result = self._add(sid, network, pin, record)
            except BaseException:
                try:  # every plugin's DEL, as far as they go: a failed ADD leaves nothing
                    self._del(sid, record)
                except Exception as exc:  # noqa: BLE001 - the ADD's error is the one to report
                    get_logger().warning("CNI DEL after a failed ADD", sandbox=sid,
                                         error=str(exc))
                finally:
                    self._forget(sid, pin)
                raise
            record["result"] = result
            self._write(sid, record)
        get_logger().info("pod network attached", sandbox=sid, network=network.name,
                          ips=addresses(result),
                          ms=round((time.monotonic() - started) * 1000, 1))
        return addresses(result)

    def detach(self, sid: str, force: bool = False) -> None:
        """DEL the pod from the network it was attached to and unpin its namespace.
        Idempotent: a sandbox with no record (never attached, or detached) is a no-op. A
        failed DEL keeps the record so that a retry runs it again (containerd's rule),
        unless ``force``: then the pin and record go anyway."""
        with self._sandbox_lock(sid):
            record = self.record(sid)
            if record is None:
                return
            try:
                self._del(sid, record)
            except Exception:
                if force:
                    self._forget(sid, str(record.get("netns", "")))
                raise
            self._forget(sid, str(record.get("netns", "")))
        with self._lock:
            self._busy.pop(sid, None)

    # -- the namespace pin

    def _pin(self, sid: str, pid: int) -> str:
        self.pins.mkdir(parents=True, exist_ok=True)
        path = str(self.pins / sid)
        source = f"/proc/{pid}/ns/net"
        try:
            # Never the host's namespace: the bridge plugin would wire the host's eth0.
            if os.stat(source).st_ino == os.stat("/proc/self/ns/net").st_ino:
                raise FailedPrecondition(f"pod sandbox {sid[:12]} has the host's network")
            if not pinned.is_pinned(path):
                with open(path, "a"):
                    pass
                linux.mount(source, path, None, linux.MS_BIND)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise FailedPrecondition(f"cannot pin the network namespace of pod sandbox "
                                     f"{sid[:12]} (pid {pid}): {exc.strerror}") from None
        return path

    def _forget(self, sid: str, pin: str) -> None:
        if pin:
            pinned.unpin(pin)
        with contextlib.suppress(FileNotFoundError):
            self._record_path(sid).unlink()

    def _write(self, sid: str, record: dict[str, Any]) -> None:
        self.results.mkdir(parents=True, exist_ok=True)
        path = self._record_path(sid)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    # -- the plugins

    def _add(self, sid: str, network: NetworkList, pin: str,
             record: dict[str, Any]) -> dict[str, Any]:
        prev: dict[str, Any] | None = None
        for plugin in network.plugins:
            prev = self._exec("ADD", sid, network, plugin, pin, record, prev)
        return prev or {}

    def _del(self, sid: str, record: dict[str, Any]) -> None:
        net = record.get("network") or {}
        network = NetworkList(net.get("name", ""), net.get("cniVersion", ""),
                              list(net.get("plugins") or []), net.get("source", ""))
        # The spec: DEL in reverse order, with the ADD's final result as prevResult; the
        # namespace may be gone (plugins then clean up what is outside it).
        netns = str(record.get("netns", ""))
        if netns and not pinned.is_pinned(netns):
            netns = ""
        # Every plugin is asked even when one fails (what it holds is its own); the
        # first failure is reported.
        errors: list[Exception] = []
        for plugin in reversed(network.plugins):
            try:
                self._exec("DEL", sid, network, plugin, netns, record, record.get("result"))
            except (FailedPrecondition, Internal) as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def _exec(self, command: str, sid: str, network: NetworkList, plugin: dict[str, Any],
              netns: str, record: dict[str, Any],
              prev: dict[str, Any] | None) -> dict[str, Any]:
        kind = str(plugin["type"])
        binary = self._find(kind)
        conf = dict(plugin, name=network.name, cniVersion=network.cni_version)
        if prev:
            conf["prevResult"] = prev
        caps = plugin.get("capabilities") or {}
        if isinstance(caps, dict) and caps.get("portMappings") and record["portMappings"]:
            conf["runtimeConfig"] = {"portMappings": record["portMappings"]}
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "CNI_COMMAND": command, "CNI_CONTAINERID": sid, "CNI_NETNS": netns,
               "CNI_IFNAME": IFNAME, "CNI_ARGS": str(record.get("args", "")),
               "CNI_PATH": self.bin_dirs}
        try:
            proc = subprocess.run([binary], input=json.dumps(conf).encode(), env=env,
                                  capture_output=True, timeout=PLUGIN_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise Internal(f"CNI plugin {kind} {command} took over {PLUGIN_TIMEOUT:.0f} s "
                           f"for pod sandbox {sid[:12]}") from None
        except OSError as exc:
            raise FailedPrecondition(f"cannot run CNI plugin {binary}: {exc.strerror}") from None
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            raise Internal(f"CNI plugin {kind} {command} failed for pod sandbox {sid[:12]}: "
                           f"{_error_text(out, proc.stderr)}")
        if command != "ADD" or not out:
            return {}
        try:
            result = json.loads(out)
        except ValueError:
            raise Internal(f"CNI plugin {kind} ADD printed no JSON result: {out[:200]!r}"
                           ) from None
        return result if isinstance(result, dict) else {}

    def _find(self, kind: str) -> str:
        for directory in self.bin_dirs.split(":"):
            path = os.path.join(directory, kind)
            if directory and os.access(path, os.X_OK):
                return path
        raise FailedPrecondition(f"CNI plugin {kind!r} not found in {self.bin_dirs}")


def _error_text(out: str, err: bytes) -> str:
    """The spec's error object ({"code", "msg", "details"}) as a line, else the raw text."""
    with contextlib.suppress(ValueError):
        data = json.loads(out)
        if isinstance(data, dict) and "msg" in data:
            details = f" ({data['details']})" if data.get("details") else ""
            return f"{data['msg']}{details} [code {data.get('code')}]"
    text = (out or err.decode(errors="replace")).strip()
    return text[:500] or "no output"
