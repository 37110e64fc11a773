"""muelle across network-namespace hosts (tests/support/hosts.py), every hop mutual TLS:

- ``across-pull``: a cold pull on host B through the shared registry service on host A
  (its cache warm: another engine of the fleet pulled the image before) vs straight from
  the origin registry on host O by B's own registry service. O's uplink is shaped to
  ``MUELLE_BENCH_ORIGIN_MBIT`` (default 200 Mbit/s; 0 = unshaped): the origin is far
  (Docker Hub, another site), the shared proxy near. Ratio: proxy / direct.
- ``across-run-rm``: ``run --rm --network none IMAGE true`` from host D to B's gateway
  over mutual TLS vs from B over a unix socket (two engines on B alike but for the
  gateway's listener). Ratio: mTLS from D / unix socket on B.

Each pull round gets a fresh engine on B (started and removed outside the timing); the
run engines live for the whole benchmark. The CLI runs in the host's network namespace
on both sides (nsenter), so both pay the same fork and exec.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import launcher
from services.core import config as configmod
from tests.bench import images
from tests.bench.harness import Contender, Settings, emit, run_rounds, timed
from tests.bench.sides import MARKS
from tests.support import hostcheck
from tests.support.engine import sweep
from tests.support.hosts import Host, Lab
from tests.support.images import push_layout
from tests.support.pki import Pki
from tests.support.registry import REGISTRY_BIN, LocalRegistry
from vocab.channel import TlsFiles

pytestmark = MARKS

PY = sys.executable
CLI = str(Path(sys.executable).parent / "muelle")
ENGINE = ("imagestore", "shim", "gateway")
REGISTRY_PORT, PROXY_PORT, GATEWAY_PORT = 5000, 7401, 7400


def _origin_mbit() -> int:
    return int(os.environ.get("MUELLE_BENCH_ORIGIN_MBIT") or 200)


class Fleet:
    """Hosts O (origin registry), A (shared registry service), B (engines), D (clients)."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="mu-bx-", dir="/tmp"))
        self.base.chmod(0o711)
        self.lab = Lab(["o", "a", "b", "d"])
        self.pki = Pki(self.base / "pki")
        self.client = self.pki.issue("client-d", ips=[])
        self.running: list[tuple[configmod.Config, tuple[str, ...], str]] = []
        self.registry = registry
        hostcheck.claim(str(self.base))

    def start(self) -> None:
        self.lab.start()
        o, a = self.lab["o"], self.lab["a"]
        (self.base / "o").mkdir()
        config = self.base / "o" / "registry.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.registry.workdir / 'data'}\n"
            f"http:\n  addr: {o.ip}:{REGISTRY_PORT}\n")
        with open(self.base / "o" / "registry.log", "wb") as log:
            o.popen([REGISTRY_BIN, "serve", str(config)], log)
        o.wait_port(REGISTRY_PORT)
        mbit = _origin_mbit()
        if mbit:  # O's uplink: everything it sends, to A and to B alike
            o.run(["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate",
                   f"{mbit}mbit", "burst", "256kb", "latency", "100ms"], check=True)
        proxy = self.pki.issue("registry-a", ips=[a.ip])
        self.launch(a, "a", f"""
[addresses]
registry = "tcp://{a.ip}:{PROXY_PORT}"
[registry]
insecure_registries = ["{self.origin}"]
cache_max_bytes = 4000000000
[tls]
ca = "{proxy.ca}"
cert = "{proxy.cert}"
key = "{proxy.key}"
[authz]
registry = ["imagestore-*"]
""", ("registry",))

    @property
    def origin(self) -> str:
        return f"{self.lab['o'].ip}:{REGISTRY_PORT}"

    def launch(self, host: Host, name: str, text: str, services: tuple[str, ...],
               cgroup_parent: str = "") -> configmod.Config:
        root = self.base / name
        root.mkdir(exist_ok=True)
        path = root / "muelle.toml"
        path.write_text(f'root = "{root / "root"}"\nrun = "{root / "run"}"\n'
                        'log_format = "json"\n' + text)
        cfg = configmod.load(str(path))
        self.running.append((cfg, services, cgroup_parent))
        host.run([PY, "-m", "engine.launcher", "up", "--config", str(path),
                  "--services", ",".join(services)], check=True)
        return cfg

    def engine(self, name: str, *, shared_proxy: bool, tcp_gateway: bool = False
               ) -> configmod.Config:
        """An engine on B: its registry either A's shared service (mTLS, as
        imagestore-b) or its own on a unix socket, straight to the origin."""
        b, a = self.lab["b"], self.lab["a"]
        parent = f"muelle-test-{uuid.uuid4().hex[:8]}"
        bridge = f"mub{uuid.uuid4().hex[:8]}"
        hostcheck.claim(parent, bridge)
        store = self.pki.issue("imagestore-b", ips=[b.ip])
        lines = [f'registry = "tcp://{a.ip}:{PROXY_PORT}"' if shared_proxy else ""]
        # The gateway's certificate also identifies it to A's registry service.
        gateway = self.pki.issue("gateway-b", ips=[b.ip])
        tls = (f'[tls]\nca = "{store.ca}"\n[tls.imagestore]\ncert = "{store.cert}"\n'
               f'key = "{store.key}"\n[tls.gateway]\ncert = "{gateway.cert}"\n'
               f'key = "{gateway.key}"\n')
        if tcp_gateway:
            lines.append(f'gateway = "tcp://{b.ip}:{GATEWAY_PORT}"')
        services = ENGINE if shared_proxy else ("registry", *ENGINE)
        return self.launch(b, name, "[addresses]\n" + "\n".join(lines) + f"""
[registry]
insecure_registries = ["{self.origin}"]
[shim]
default_runtime = "muelle"
cgroup_parent = "{parent}"
[network]
default_mode = "none"
bridge = "{bridge}"
{tls}[authz]
gateway = ["client-*"]
""", services, parent)

    def stop(self, cfg: configmod.Config) -> list[str]:
        for entry in [e for e in self.running if e[0] is cfg]:
            self.running.remove(entry)
            launcher.stop(cfg, entry[1])
            leftovers = sweep(cfg.root.parent, entry[2]) if entry[2] else []
            shutil.rmtree(cfg.root.parent, ignore_errors=True)
            return leftovers
        return []

    def cli(self, host: str, cfg: configmod.Config, *args: str) -> None:
        """muelle on ``host`` ("b": the gateway's unix socket; "d": its mTLS port)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MUELLE_", "DOCKER_"))}
        env["MUELLE_HOST"] = cfg.address("gateway")
        if host == "d":
            c: TlsFiles = self.client
            env.update(MUELLE_TLS_CACERT=c.ca, MUELLE_TLS_CERT=c.cert, MUELLE_TLS_KEY=c.key)
        self.lab[host].run([CLI, *args], env=env, check=True, timeout=1200)

    def close(self) -> None:
        leftovers: list[str] = []
        try:
            for cfg, _services, _parent in reversed(list(self.running)):
                leftovers += self.stop(cfg)
            self.lab.stop_processes()
        finally:
            self.lab.close()
            shutil.rmtree(self.base, ignore_errors=True)
        assert not leftovers, leftovers


@pytest.fixture(scope="module")
def fleet(registry: LocalRegistry) -> Iterator[Fleet]:
    f = Fleet(registry)
    try:
        f.start()
        yield f
    finally:
        f.close()


def test_pull_through_the_shared_proxy_vs_from_the_origin(settings: Settings,
                                                          fleet: Fleet,
                                                          registry: LocalRegistry) -> None:
    layers, mib = settings.scaled(5, 2), settings.scaled(40, 4)
    layout = images.random_layout(layers=layers, mib=mib)
    path = f"bench/{layout.name.lower()}:1"
    push_layout(layout, f"{registry.host}/{path}", tag="1")
    ref = f"{fleet.origin}/{path}"
    # Another engine of the fleet pulled it before: A's cache holds it (untimed).
    warm = fleet.engine("warm", shared_proxy=True)
    fleet.cli("b", warm, "pull", ref)
    fleet.stop(warm)
    current: list[configmod.Config] = []

    def fresh(shared_proxy: bool) -> None:
        current.append(fleet.engine(f"e{uuid.uuid4().hex[:6]}", shared_proxy=shared_proxy))

    def done() -> None:
        while current:
            assert not fleet.stop(current.pop())

    contenders = [
        Contender("shared-proxy", timed(lambda: fleet.cli("b", current[-1], "pull", ref),
                                        lambda: fresh(True), done)),
        Contender("direct", timed(lambda: fleet.cli("b", current[-1], "pull", ref),
                                  lambda: fresh(False), done)),
    ]
    result = run_rounds("across-pull", contenders, pairs=settings.pairs,
                        warmup=settings.warmup, meta={
                            "image": f"{layers} x {mib} MiB random layers",
                            "origin_uplink_mbit": _origin_mbit() or "unshaped",
                            "shared-proxy": "A's registry service, warm cache, mTLS",
                            "direct": "B's own registry service, HTTP to the origin O"})
    emit(result, settings)


def test_run_rm_from_another_host_over_mtls_vs_unix_socket(settings: Settings,
                                                           fleet: Fleet,
                                                           busybox_ref: str,
                                                           registry: LocalRegistry) -> None:
    image = busybox_ref.replace(registry.host, fleet.origin)
    tcp = fleet.engine("run-tcp", shared_proxy=False, tcp_gateway=True)
    unix = fleet.engine("run-unix", shared_proxy=False)
    fleet.cli("d", tcp, "pull", image)
    fleet.cli("b", unix, "pull", image)
    argv = ("run", "--rm", "--network", "none", image, "true")
    contenders = [
        Contender("mtls-from-d", timed(lambda: fleet.cli("d", tcp, *argv))),
        Contender("unix-on-b", timed(lambda: fleet.cli("b", unix, *argv))),
    ]
    try:
        result = run_rounds("across-run-rm", contenders, pairs=settings.pairs,
                            warmup=settings.warmup, meta={
                                "command": "run --rm --network none IMAGE true",
                                "mtls-from-d": "host D -> tcp://B:7400, ECDSA P-256"})
    finally:
        leftovers = fleet.stop(tcp) + fleet.stop(unix)
    assert not leftovers, leftovers
    emit(result, settings)
