"""Pod networks from CNI plugins, as containerd's CRI makes them (``[cri] network =
"cni"``): the first network configuration (``*.conflist``, ``*.conf``, in name order) of
``cni_conf_dir``, its plugins run from ``cni_bin_dir`` (Debian's containernetworking-
plugins: bridge, host-local, portmap, ...) per the CNI 1.0 spec, and ``loopback`` for
``lo``.

The pod's infra container runs with engine network mode "none" (a network namespace of
its own with only ``lo``); muelle-cri then ADDs the pod to the network inside that
namespace (``/proc/<infra pid>/ns/net``, on this host: the kubelet runs CRI and runtime on
one node) and DELs it before the infra container stops. The pod's containers join the
namespace with ``container:<sandbox>`` as with the shim's bridge. Each ADD's result is
cached in ``<state>/cni/<sandbox>.json`` (libcni keeps the same cache): the pod's IP for
PodSandboxStatus and PortForward, and what a DEL needs after a muelle-cri restart.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.core.errors import FailedPrecondition, InvalidArgument

IFNAME = "eth0"
# A plugin that takes longer is stuck (an ADD is tens of milliseconds here).
PLUGIN_TIMEOUT = 60.0


@dataclass
class PortMapping:
    host_port: int
    container_port: int
    protocol: str  # "tcp" or "udp"
    host_ip: str = ""

    def runtime_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hostPort": self.host_port,
                               "containerPort": self.container_port,
                               "protocol": self.protocol}
        if self.host_ip:
            out["hostIP"] = self.host_ip
        return out


class Cni:
    def __init__(self, conf_dir: str, bin_dir: str, cache_dir: Path) -> None:
        self.conf_dir = Path(conf_dir)
        self.bin_dir = bin_dir
        self.cache_dir = cache_dir

    def network(self) -> dict[str, Any]:
        """The network list in force: the first config file, as libcni picks it."""
        try:
            files = sorted(p for p in self.conf_dir.iterdir()
                           if p.suffix in (".conflist", ".conf", ".json"))
        except OSError:
            files = []
        if not files:
            raise FailedPrecondition(f"cni config uninitialized: no network configuration "
                                     f"in {self.conf_dir}")
        path = files[0]
        try:
            conf = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise FailedPrecondition(f"cni config {path}: {exc}") from None
        if not isinstance(conf, dict):
            raise FailedPrecondition(f"cni config {path}: not a JSON object")
        if "plugins" not in conf:  # a single-plugin .conf
            conf = {"cniVersion": conf.get("cniVersion", "1.0.0"),
                    "name": conf.get("name", ""), "plugins": [conf]}
        if not conf.get("name") or not isinstance(conf["plugins"], list) \
                or not conf["plugins"]:
            raise FailedPrecondition(f"cni config {path}: needs a name and plugins")
        return conf

    def ready(self) -> str:
        """"" when pods can be networked, else why not (NetworkReady's message)."""
        try:
            self.network()
        except FailedPrecondition as exc:
            return str(exc)
        return ""

    def add(self, sandbox_id: str, netns: str, ports: list[PortMapping]) -> str:
        """Put the pod into the network; its IP address. A failed ADD is undone."""
        conf = self.network()
        self._exec("loopback", "ADD", sandbox_id, netns, "lo", {
            "cniVersion": conf["cniVersion"], "name": "cni-loopback", "type": "loopback"})
        result: dict[str, Any] | None = None
        try:
            for plugin in conf["plugins"]:
                result = self._exec(plugin.get("type", ""), "ADD", sandbox_id, netns, IFNAME,
                                    self._plugin_conf(conf, plugin, ports, result))
        except BaseException:
            self._delete(conf, sandbox_id, netns, ports)
            raise
        ip = _first_ip(result)
        self._cache(sandbox_id).parent.mkdir(parents=True, exist_ok=True)
        self._cache(sandbox_id).write_text(json.dumps({
            "network": conf["name"], "netns": netns, "ip": ip,
            "ports": [p.__dict__ for p in ports], "result": result}))
        return ip

    def delete(self, sandbox_id: str, netns: str = "") -> None:
        """Take the pod out of the network (idempotent: nothing cached, nothing to do).
        ``netns`` "" when the namespace is gone: the plugins still free the address and
        the host's rules, as the spec asks of them."""
        cached = self.cached(sandbox_id)
        if cached is None:
            return
        conf = self.network()
        ports = [PortMapping(**p) for p in cached.get("ports", [])]
        self._delete(conf, sandbox_id, netns, ports, cached.get("result"))
        self._cache(sandbox_id).unlink(missing_ok=True)

    def _delete(self, conf: dict[str, Any], sandbox_id: str, netns: str,
                ports: list[PortMapping], result: dict[str, Any] | None = None) -> None:
        errors = []
        for plugin in reversed(conf["plugins"]):
            try:
                self._exec(plugin.get("type", ""), "DEL", sandbox_id, netns, IFNAME,
                           self._plugin_conf(conf, plugin, ports, result))
            except (FailedPrecondition, InvalidArgument) as exc:
                errors.append(str(exc))  # the others still release what they hold
        if errors:
            raise FailedPrecondition("; ".join(errors))

    def cached(self, sandbox_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._cache(sandbox_id).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _cache(self, sandbox_id: str) -> Path:
        return self.cache_dir / f"{sandbox_id}.json"

    @staticmethod
    def _plugin_conf(conf: dict[str, Any], plugin: dict[str, Any], ports: list[PortMapping],
                     prev: dict[str, Any] | None) -> dict[str, Any]:
        out = {**plugin, "cniVersion": conf["cniVersion"], "name": conf["name"]}
        capabilities = plugin.get("capabilities") or {}
        if capabilities.get("portMappings") and ports:
            out["runtimeConfig"] = {"portMappings": [p.runtime_config() for p in ports]}
        if prev is not None:
            out["prevResult"] = prev
        return out

    def _exec(self, kind: str, command: str, sandbox_id: str, netns: str, ifname: str,
              conf: dict[str, Any]) -> dict[str, Any] | None:
        if not kind or "/" in kind:
            raise FailedPrecondition(f"cni plugin {kind!r}: not a plugin name")
        binary = os.path.join(self.bin_dir, kind)
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": sandbox_id, "CNI_NETNS": netns,
               "CNI_IFNAME": ifname, "CNI_PATH": self.bin_dir,
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        try:
            proc = subprocess.run([binary], input=json.dumps(conf).encode(), env=env,
                                  capture_output=True, timeout=PLUGIN_TIMEOUT, check=False)
        except FileNotFoundError:
            raise FailedPrecondition(f"cni plugin {kind!r} not found in {self.bin_dir}") \
                from None
        except subprocess.TimeoutExpired:
            raise FailedPrecondition(f"cni plugin {kind} {command} took longer than "
                                     f"{PLUGIN_TIMEOUT:.0f}s") from None
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            raise FailedPrecondition(f"cni plugin {kind} {command} failed: "
                                     f"{_error_text(out) or proc.stderr.decode().strip()}")
        if command != "ADD" or not out:
            return None
        try:
            result = json.loads(out)
        except ValueError:
            raise FailedPrecondition(f"cni plugin {kind} ADD: output is not JSON") from None
        return result if isinstance(result, dict) else None


def _error_text(out: str) -> str:
    try:
        err = json.loads(out)
    except ValueError:
        return out
    if isinstance(err, dict):
        return " ".join(str(err.get(k, "")) for k in ("msg", "details") if err.get(k))
    return out


def _first_ip(result: dict[str, Any] | None) -> str:
    for entry in (result or {}).get("ips") or []:
        address = str(entry.get("address", ""))
        if address:
            return address.split("/", 1)[0]
    raise FailedPrecondition("cni: the network gave the pod no IP address")
