"""Configuration: one TOML file, overridden by environment variables, then by flags.

Every service reads the same file (``--config``, else ``$MUELLE_CONFIG``, else
``/etc/muelle/muelle.toml`` when it exists). ``MUELLE_ROOT`` and ``MUELLE_RUN`` move the
state and socket directories, so several engines can run side by side.

Example::

    root = "/var/lib/muelle"
    run = "/run/muelle"
    log_format = "json"

    [addresses]            # where each service listens / is reached
    registry = "unix:///run/muelle/registry.sock"
    imagestore = "tcp://10.0.0.2:7402"

    [registry]
    insecure_registries = ["myregistry:5000"]

    [shim]
    default_runtime = "muelle"
    cgroup_parent = "muelle"   # default: derived from root (see engine_names)

    [imagestore]
    max_blob_bytes = 34359738368   # pulls are refused before downloading a bigger blob

    [gateway]
    userns_remap = ["0:100000:65536"]  # every container in a user namespace (--userns=host: not)

    [tls]                    # mutual TLS of every tcp:// listener and channel
    ca = "/etc/muelle/tls/ca.pem"      # signs the peers' certificates
    cert = "/etc/muelle/tls/cert.pem"  # ours, presented as server and as client
    key = "/etc/muelle/tls/key.pem"
    insecure = false         # true: plain TCP, refused off loopback
    [tls.gateway]            # per service (gateway, imagestore, registry, shim, dockerapi)
    cert = "/etc/muelle/tls/gateway.pem"

    [authz]                  # certificate identities (CN or DNS SAN, shell patterns)
    gateway = ["client-*"]   # allowed to call each service over TLS; none = nobody
    shim = ["gateway-*"]

    [cri]                    # muelle-cri, Kubernetes' CRI (services/cri)
    sandbox_image = "registry.k8s.io/pause:3.10"

    [network]
    default_mode = "bridge"  # none | host | bridge
    bridge = "muelle0"       # default: derived from root (see engine_names)
    subnet = ""              # picked among free /24s when empty

The default bridge and cgroup parent are host-global names, so each engine's default is
its own (``engine_names``): ``muelle0`` and ``muelle`` for the engine at the default root,
``muelle-<8 hex of sha256(root)>`` for any other root. Two engines with default configs
thus never share them; the shim also refuses to start when a live engine with another root
holds the names it was configured with (services/shim/claims.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec

from vocab.channel import TlsFiles
from vocab.errors import InvalidArgument

SERVICES = ("gateway", "imagestore", "registry", "shim")
# Listeners that take [tls.<name>] and [authz] entries: the services and the Docker API.
TLS_SCOPES = (*SERVICES, "dockerapi")
DEFAULT_CONFIG_FILE = Path("/etc/muelle/muelle.toml")
DEFAULT_ROOT = Path("/var/lib/muelle")
IFNAMSIZ = 15  # the longest interface name Linux takes
T = TypeVar("T")


class RegistryConfig(msgspec.Struct, forbid_unknown_fields=True):
    # Registries reached over plain HTTP (loopback registries always are).
    insecure_registries: list[str] = []
    # Pull-only mirrors by registry host, containerd hosts.toml style: a pull of
    # "registry.k8s.io/pause:3.10" asks "127.0.0.1:5000" for "pause:3.10" (same repository
    # path); the image keeps its name. {"registry.k8s.io" = "127.0.0.1:5000"}.
    mirrors: dict[str, str] = {}
    # Path of a docker-style config.json with credentials.
    auth_file: str = ""
    # Per-registry TLS material, Docker's layout: <certs_dir>/<host[:port]>/ holds CA
    # certificates (*.crt) and client certificate pairs (name.cert + name.key).
    certs_dir: str = "/etc/muelle/certs.d"
    # Shared blob cache of the registry service (bytes, LRU); 0 = off. Worth it when
    # several image stores pull through one registry service; a lone engine's image
    # store already keeps every blob.
    cache_max_bytes: int = 0
    # A blob of 32 MiB or more is fetched as 8 MiB Range requests, this many at once
    # (registry/ranges.py); 1 = one request per blob, as Docker does.
    parallel_ranges: Annotated[int, msgspec.Meta(ge=1, le=16)] = 4
    # Serve a read-only pull-through mirror of mirror_upstream ("host:port" or
    # "docker.io") on mirror_listen ("127.0.0.1:5001"); off when empty. It reaches
    # upstream anonymously and serves only what upstream serves to anyone.
    mirror_listen: str = ""
    mirror_upstream: str = ""
    # A blob download that receives fewer than blob_min_bytes in blob_window_seconds
    # fails (a registry sending a byte every 50 s must not hold a pull forever); the
    # same window bounds how long one read may wait for a byte. 0 bytes = no minimum.
    blob_min_bytes: Annotated[int, msgspec.Meta(ge=0, le=1 << 40)] = 32 * 1024
    blob_window_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    # Tell an image store on this host (a caller on a unix socket) where to download a
    # large blob itself (registry.v1 LocateBlob), so its bytes skip this service's relay:
    # a cold pull of 5 x 40 MiB took ~35% less wall time. Tokens for one repository's
    # pull go with it; passwords and certs.d material never do.
    blob_locations: bool = True


class ImageStoreConfig(msgspec.Struct, forbid_unknown_fields=True):
    # A pull is refused before any download when one of its blobs (layer or config) is
    # declared larger than max_blob_bytes, or all of them together than max_pull_bytes
    # (a hostile registry may declare 1 TiB).
    max_blob_bytes: Annotated[int, msgspec.Meta(ge=1, le=1 << 60)] = 32 * 1024**3
    max_pull_bytes: Annotated[int, msgspec.Meta(ge=1, le=1 << 60)] = 128 * 1024**3
    # A blob download does not start when it would leave less than this free on the
    # store's filesystem (the rest of the host needs some too).
    min_free_bytes: Annotated[int, msgspec.Meta(ge=0, le=1 << 60)] = 1024**3


class ShimConfig(msgspec.Struct, forbid_unknown_fields=True):
    # OCI runtime used when a request names none: "muelle", "runc" or "crun".
    default_runtime: str = "muelle"
    # Paths of the runtime binaries, by name; looked up in PATH when absent.
    runtimes: dict[str, str] = {}
    # cgroup parent of every container: <mount>/<controller>/<cgroup_parent>/<id>.
    # "" = the engine's own, derived from its root (engine_names).
    cgroup_parent: str = ""
    # Static init for `run --init` (bind-mounted at /sbin/docker-init); "" = look for
    # Debian's tini-static, then docker-init.
    init_path: str = ""
    # Container logs rotate past this size, keeping this many files (Docker's json-file
    # never rotates unless told to; a chatty container fills the disk).
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3


class GatewayConfig(msgspec.Struct, forbid_unknown_fields=True):
    # User namespace of every container that does not ask otherwise (dockerd's
    # --userns-remap): "CONTAINER:HOST:SIZE" ranges for both uids and gids, e.g.
    # ["0:100000:65536"]; empty = none. `run --userns=host` opts a container out.
    userns_remap: list[str] = []


class DockerApiConfig(msgspec.Struct, forbid_unknown_fields=True):
    # Unix socket of the Docker Engine API; $MUELLE_RUN/docker.sock when empty. Mode 0660,
    # owner root, group ``group`` (like Docker's "docker" group) when set.
    socket: str = ""
    group: str = ""
    # Also serve on TCP, as dockerd -H tcp://: "0.0.0.0:2376" (a host alone: port 2376,
    # Docker's TLS port; 2375 with insecure = true), mutual TLS with [tls.dockerapi] and
    # the identities [authz].dockerapi lists; plain only with insecure = true on
    # loopback. Off when empty.
    tcp: str = ""


class NetworkConfig(msgspec.Struct, forbid_unknown_fields=True):
    # Network of containers created without --network: "bridge", "none", "host".
    default_mode: str = "bridge"
    # Linux bridge of the default "bridge" network (IFNAMSIZ: at most 15 chars).
    # "" = the engine's own, derived from its root (engine_names).
    bridge: str = ""
    # Its subnet; picked among free private /24s (no host route overlaps) when empty.
    subnet: str = ""


class CriConfig(msgspec.Struct, forbid_unknown_fields=True):
    # Image of each pod's infra ("pause") container, which holds the pod's network
    # namespace (services/cri/README.md); pulled on the first RunPodSandbox when absent.
    sandbox_image: str = "registry.k8s.io/pause:3.10"
    # Command of the infra container; empty = the image's (a pause image's /pause). Set
    # it to e.g. ["sleep", "2147483647"] to use a busybox image as the infra image.
    sandbox_command: list[str] = []
    # Where the streaming server for Exec, Attach and PortForward listens (host:port; port
    # 0 = a free one). Its URLs carry one-time tokens; keep it on loopback unless the
    # kubelet's proxy must reach it from elsewhere.
    stream_address: str = "127.0.0.1:0"
    # RuntimeClass handlers: handler name -> the shim's runtime ("muelle", "runc", "crun"
    # or one of [shim.runtimes]). Added to the built-in runc, crun and muelle-runtime
    # (services/cri/handlers.py); the empty handler is the shim's default runtime.
    runtime_handlers: dict[str, str] = {}
    # Pod networks: "" = the shim's bridge (engine network mode, the default); a directory
    # = CNI, as containerd: the first network config in it (lexical order, .conflist,
    # .conf or .json) is run per pod by the plugins in cni_bin_dir (services/cri/cni.py).
    cni_conf_dir: str = ""
    # CNI_PATH: where the plugins are (':'-separated); Debian's containernetworking-plugins.
    cni_bin_dir: str = "/usr/lib/cni"


class TlsConfig(msgspec.Struct, forbid_unknown_fields=True):
    # PEM files: the CA that signs peers' certificates, our certificate and its key.
    ca: str = ""
    cert: str = ""
    key: str = ""
    # Plain TCP instead of TLS; services refuse it on any address but loopback.
    insecure: bool = False


class Config(msgspec.Struct, forbid_unknown_fields=True):
    root: Path = Path("/var/lib/muelle")
    run: Path = Path("/run/muelle")
    log_format: str = "console"
    log_level: str = "info"
    addresses: dict[str, str] = {}
    registry: RegistryConfig = msgspec.field(default_factory=RegistryConfig)
    shim: ShimConfig = msgspec.field(default_factory=ShimConfig)
    network: NetworkConfig = msgspec.field(default_factory=NetworkConfig)
    gateway: GatewayConfig = msgspec.field(default_factory=GatewayConfig)
    imagestore: ImageStoreConfig = msgspec.field(default_factory=ImageStoreConfig)
    dockerapi: DockerApiConfig = msgspec.field(default_factory=DockerApiConfig)
    cri: CriConfig = msgspec.field(default_factory=CriConfig)
    # [tls] (key "") and [tls.<service>] overrides; see tls_files().
    tls: dict[str, TlsConfig] = {}
    # [authz]: service -> identity patterns allowed to call it over TLS.
    authz: dict[str, list[str]] = {}

    def tls_files(self, service: str) -> TlsFiles:
        """TLS material of ``service``, as server and as client of its neighbours:
        [tls.<service>] over [tls]. (Not from the environment: the CLI's MUELLE_TLS_*
        variables in an operator's shell must not change what a service presents.)"""
        base = self.tls.get("", TlsConfig())
        own = self.tls.get(service, TlsConfig())
        return TlsFiles(ca=own.ca or base.ca, cert=own.cert or base.cert,
                        key=own.key or base.key, insecure=own.insecure or base.insecure)

    def address(self, service: str) -> str:
        """gRPC address of ``service``: configured, else a unix socket in the run dir."""
        env = os.environ.get(f"MUELLE_{service.upper()}_ADDR")
        if env:
            return env
        return self.addresses.get(service) or f"unix://{self.run / (service + '.sock')}"

    def docker_socket(self) -> Path:
        """Where the Docker Engine API listens (muelle-dockerapi)."""
        return Path(self.dockerapi.socket) if self.dockerapi.socket else self.run / "docker.sock"

    def state_dir(self, service: str) -> Path:
        """Directory where ``service`` keeps its state."""
        return self.root / service


def load(path: str | None = None, **overrides: Any) -> Config:
    """Load the configuration. ``overrides`` (from flags) win when not None."""
    cfg = Config()
    file = Path(path or os.environ.get("MUELLE_CONFIG", "") or DEFAULT_CONFIG_FILE)
    if path or os.environ.get("MUELLE_CONFIG") or file.exists():
        try:
            data = tomllib.loads(file.read_text())
        except FileNotFoundError as exc:
            raise InvalidArgument(f"config file {file} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"config file {file}: {exc}") from exc
        cfg = parse(data, str(file))
    if os.environ.get("MUELLE_ROOT"):
        cfg.root = Path(os.environ["MUELLE_ROOT"])
    if os.environ.get("MUELLE_RUN"):
        cfg.run = Path(os.environ["MUELLE_RUN"])
    if os.environ.get("MUELLE_LOG_FORMAT"):
        cfg.log_format = os.environ["MUELLE_LOG_FORMAT"]
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, Path(value) if key in ("root", "run") else value)
    bridge, parent = engine_names(cfg.root)
    cfg.network.bridge = cfg.network.bridge or bridge
    cfg.shim.cgroup_parent = cfg.shim.cgroup_parent or parent
    return cfg


def engine_names(root: Path) -> tuple[str, str]:
    """The default bridge and cgroup parent of the engine at ``root``.

    Both are host-global while the root is not: two engines on one host with default
    configs shared ``muelle0``, and the first to stop deleted it (and left a masquerade
    rule) under the other's containers. Deriving them from the root keeps each engine's
    own without any configuration, and the same across restarts (a restarted shim finds
    its bridge and its containers' cgroups again). The engine at the default root keeps
    the documented names, like Docker's ``docker0``.
    """
    if Path(os.path.abspath(root)) == DEFAULT_ROOT:
        return "muelle0", "muelle"
    tag = "muelle-" + hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:8]
    return tag, tag  # 15 characters: fits IFNAMSIZ


def parse(data: dict[str, Any], origin: str) -> Config:
    """The configuration a TOML document holds, checked against the schema above (the
    classes' types, ``msgspec.Meta`` bounds, no unknown key) before any service sees it:
    a wrong type would only fail deep inside a service. A refusal names ``origin`` (the
    file) and the key."""
    data = dict(data)
    tls = _tls_scopes(data.pop("tls", {}), origin)
    authz = data.pop("authz", {})
    cfg = _convert(data, Config, origin)
    cfg.tls = {scope: _convert(values, TlsConfig, origin, f"tls.{scope}" if scope else "tls")
               for scope, values in tls.items()}
    cfg.authz = _authz(authz, origin)
    if cfg.network.bridge:
        _check_ifname(origin, cfg.network.bridge)
    return cfg


def _tls_scopes(data: Any, origin: str) -> dict[str, Any]:
    """[tls] holds its own keys and [tls.<service>] tables with the same keys: scope ""
    and the services' scopes, each then checked as a TlsConfig."""
    _convert(data, dict[str, Any], origin, "tls")
    scopes = {"": {k: v for k, v in data.items() if not isinstance(v, dict)}}
    for name, value in data.items():
        if isinstance(value, dict):
            if name not in TLS_SCOPES:
                raise InvalidArgument(f"{origin}: unknown table tls.{name}; services are "
                                      f"{', '.join(TLS_SCOPES)}")
            scopes[name] = value
    return scopes


def _authz(data: Any, origin: str) -> dict[str, list[str]]:
    table = _convert(data, dict[str, Any], origin, "authz")
    for name in table:
        if name not in TLS_SCOPES:
            raise InvalidArgument(f"{origin}: unknown service authz.{name}; services are "
                                  f"{', '.join(TLS_SCOPES)}")
    return {name: _convert(patterns, list[str], origin, f"authz.{name}")
            for name, patterns in table.items()}


def _path(kind: type, value: Any) -> Any:
    """msgspec's hook for the types it does not know: Path from a string."""
    if kind is Path and isinstance(value, str):
        return Path(value)
    # msgspec adds the path to a TypeError's message, as to its own refusals
    raise TypeError(f"Expected `{kind.__name__}`, got `{type(value).__name__}`")


def _convert(value: Any, kind: type[T], origin: str, where: str = "") -> T:
    try:
        return msgspec.convert(value, kind, dec_hook=_path)
    except msgspec.ValidationError as exc:
        raise _refusal(str(exc), value, origin, where) from None


# msgspec's names of TOML's types, in the words of a config file
_KINDS = {"int": "an integer", "str": "a string", "Path": "a string", "bool": "true or false",
          "array": "an array", "object": "a table", "float": "a number"}
_MESSAGE = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _refusal(message: str, data: Any, origin: str, where: str) -> InvalidArgument:
    """msgspec's ValidationError as a config refusal naming the file and the key:
    "Expected `int`, got `str` - at `$.registry.parallel_ranges`" becomes
    "<file>: registry.parallel_ranges must be an integer, not '4'"."""
    found = _MESSAGE.match(message)
    what, path = (found["what"], found["path"] or "") if found else (message, "")
    names, value, known, item = [where] if where else [], data, True, False
    for name, index in _STEP.findall(path):
        if name:
            names.append(name)
        else:
            item = True  # an array's item or a table's value: report its container
        step = name or index
        if known and isinstance(value, dict) and step in value:
            value = value[step]
        elif known and isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            known = False
    key = ".".join(names)
    if unknown := re.match(r"Object contains unknown field `(.*)`", what):
        return InvalidArgument(f"{origin}: unknown key {'.'.join([*names, unknown[1]])}")
    if expected := re.match(r"Expected `(\w+)`, got `(\w+)`", what):
        want = _KINDS.get(expected[1], expected[1])
        got = repr(value) if known else _KINDS.get(expected[2], expected[2])
        if item:
            return InvalidArgument(f"{origin}: the items of {key} must be "
                                   f"{want.removeprefix('a ').removeprefix('an ')}s, not {got}")
        return InvalidArgument(f"{origin}: {key} must be {want}, not {got}")
    if bound := re.match(r"Expected `\w+` (>=|<=) (\S+)", what):
        side = "at least" if bound[1] == ">=" else "at most"
        return InvalidArgument(f"{origin}: {key} must be {side} {bound[2]}, not {value!r}")
    return InvalidArgument(f"{origin}: {key or 'the file'}: {what}")


def _check_ifname(origin: str, name: str) -> None:
    """What the kernel takes as an interface name (dev_valid_name)."""
    if len(name) > IFNAMSIZ or name in (".", "..") or any(c in name for c in "/: \t\n"):
        raise InvalidArgument(f"{origin}: network.bridge {name!r} is not an interface name "
                              f"(at most {IFNAMSIZ} characters, no '/', ':' or spaces)")
