"""muelle across hosts: services on network-namespace "hosts" talking mutual TLS.

Host A runs the OCI registry (the session's, its storage served from A's address) and the
shared registry service; host B runs an image store, a shim and a gateway, each on its
own TCP port with its own certificate; host D runs the clients. Every hop is mTLS with
certificates from muelle-certs' code, checked against the [authz] tables:
registry <- imagestore-*, imagestore and shim <- gateway-*, gateway <- client-*.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import launcher
from services.core import config as configmod
from tests.support import hostcheck
from tests.support.engine import sweep
from tests.support.hosts import Host, Lab
from tests.support.images import Entry, Layer, build_layout, busybox_layer, push_layout
from tests.support.pki import Pki
from tests.support.registry import REGISTRY_BIN, LocalRegistry
from vocab.channel import TlsFiles

PY = sys.executable
CLI = str(Path(sys.executable).parent / "muelle")
ENGINE_SERVICES = ("imagestore", "shim", "gateway")
BIG = 16 * 1024 * 1024
PORTS = {"registry": 7401, "imagestore": 7402, "shim": 7403, "gateway": 7400}
# Debian's docker.io CLI (make setup installs it) and docker-compose 1.x.
DOCKER_CLI = "/usr/bin/docker"
COMPOSE = "/usr/bin/docker-compose"

pytestmark = pytest.mark.root  # network namespaces: the suite's conftest skips non-root


class Counter:
    """tests/support/counting_proxy.py as a process on ``host``, in front of ``target``."""

    def __init__(self, host: Host, target: str) -> None:
        self.proc = subprocess.Popen(
            host.argv([PY, "-m", "tests.support.counting_proxy", target, host.ip]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[2])
        host.procs.append(self.proc)  # stopped with the lab
        self.host = self._line()

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line, "the counting proxy did not start"
        return line

    def bytes(self) -> int:
        """What upstream has sent through the proxy so far."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self._line())


@dataclass
class Across:
    lab: Lab
    pki: Pki
    base: Path
    image: str
    client: TlsFiles
    cfg_a: configmod.Config
    cfg_b: configmod.Config
    cfg_c: configmod.Config
    upstream: Counter

    def cli(self, *args: str, tls: TlsFiles | None = None, host: str = "",
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """muelle on host D, as client-d unless ``tls`` says otherwise."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MUELLE_", "DOCKER_"))}
        env["MUELLE_HOST"] = host or f"tcp://{self.lab['b'].ip}:{PORTS['gateway']}"
        files = self.client if tls is None else tls
        if files.configured:
            env.update(MUELLE_TLS_CACERT=files.ca, MUELLE_TLS_CERT=files.cert,
                       MUELLE_TLS_KEY=files.key)
        return self.lab["d"].run([CLI, *args], env=env, check=check)

    def log(self, cfg: configmod.Config, name: str) -> str:
        return (cfg.run / f"{name}.log").read_text(errors="replace")

    def docker_env(self, files: TlsFiles | None = None) -> dict[str, str]:
        """Docker's own variables for B's Docker API on 2376, as a user on D sets them:
        DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem)."""
        files = self.client if files is None else files
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MUELLE_", "DOCKER_", "COMPOSE_"))
               # requests lets these override the CA docker-py and compose are given
               and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        config = self.base / "d-docker-config"  # nothing of the machine's Docker setup
        config.mkdir(exist_ok=True)
        env.update(DOCKER_HOST=f"tcp://{self.lab['b'].ip}:2376", DOCKER_TLS_VERIFY="1",
                   DOCKER_CERT_PATH=str(Path(files.cert).parent),
                   DOCKER_CONFIG=str(config))
        return env

    def docker(self, *args: str, files: TlsFiles | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        """The docker CLI on host D against B's Docker API over mutual TLS."""
        return self.lab["d"].run([DOCKER_CLI, *args], env=self.docker_env(files),
                                 check=check)


def _config(path: Path, root: Path, text: str) -> configmod.Config:
    path.write_text(f'root = "{root / "root"}"\nrun = "{root / "run"}"\nlog_format = "json"\n'
                    + text)
    return configmod.load(str(path))


def _tls_lines(name: str, files: TlsFiles) -> str:
    return f'[tls.{name}]\ncert = "{files.cert}"\nkey = "{files.key}"\n'


def _engine_host(host: Host, base: Path, pki: Pki, ca: str, registry: str,
                 cgroup_parent: str) -> configmod.Config:
    """An image store, shim and gateway on ``host``, each on its own TCP port with its own
    identity (imagestore-<host>, ...), using the registry service at ``registry``; the
    Docker API's listener on the host's address alone (Docker's TLS port, 2376, by
    default), identity dockerapi-<host>, for hosts that run it."""
    (base / host.name).mkdir()
    addresses = "\n".join(f'{n} = "tcp://{host.ip}:{PORTS[n]}"' for n in ENGINE_SERVICES)
    certs = "".join(_tls_lines(n, pki.issue(f"{n}-{host.name}", ips=[host.ip]))
                    for n in (*ENGINE_SERVICES, "dockerapi"))
    cfg = _config(base / host.name / "muelle.toml", base / host.name, f"""
[addresses]
registry = "{registry}"
{addresses}
[shim]
default_runtime = "muelle"
cgroup_parent = "{cgroup_parent}"
[network]
default_mode = "none"
bridge = "mut{uuid.uuid4().hex[:8]}"
[dockerapi]
tcp = "{host.ip}"
[tls]
ca = "{ca}"
{certs}
[authz]
imagestore = ["gateway-*"]
shim = ["gateway-*"]
gateway = ["client-*", "dockerapi-*"]
dockerapi = ["client-*"]
""")
    hostcheck.claim(cfg.network.bridge)
    return cfg


@pytest.fixture(scope="module")
def big_ref(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image with a 16 MiB incompressible layer, in the session registry."""
    layout = tmp_path_factory.mktemp("big") / "layout"
    big = Layer([Entry("data", "dir"), Entry("data/big", data=os.urandom(BIG))])
    build_layout(layout, [busybox_layer(), big], tag="1")
    ref = f"{registry.host}/demo/across-big:1"
    push_layout(layout, ref, tag="1")
    return ref


@pytest.fixture(scope="module")
def across(registry: LocalRegistry, busybox_ref: str) -> Iterator[Across]:
    # Short: unix sockets of the services' helpers live below (108-byte limit).
    base = Path(tempfile.mkdtemp(prefix="mu-", dir="/tmp"))
    base.chmod(0o711)
    cgroup_parents = {h: f"muelle-test-{uuid.uuid4().hex[:8]}" for h in ("b", "c")}
    hostcheck.claim(str(base), *cgroup_parents.values())
    lab = Lab(["a", "b", "c", "d"])
    cfgs: list[tuple[configmod.Config, tuple[str, ...]]] = []
    try:
        lab.start()
        a = lab["a"]
        pki = Pki(base / "pki")
        # Host A: the OCI registry, serving the session registry's storage from A, behind
        # a proxy that counts what leaves it (the upstream bytes of every pull).
        (base / "a").mkdir()
        reg_config = base / "a" / "registry.yml"
        reg_config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {registry.workdir / 'data'}\n"
            f"http:\n  addr: {a.ip}:5000\n")
        with open(base / "a" / "oci-registry.log", "wb") as log:
            a.popen([REGISTRY_BIN, "serve", str(reg_config)], log)
        a.wait_port(5000)
        counter = Counter(a, f"{a.ip}:5000")
        registry_a = pki.issue("registry-a", ips=[a.ip])
        cfg_a = _config(base / "a" / "muelle.toml", base / "a", f"""
[addresses]
registry = "tcp://{a.ip}:{PORTS['registry']}"
[registry]
insecure_registries = ["{counter.host}"]
cache_max_bytes = 1000000000
[tls]
ca = "{registry_a.ca}"
cert = "{registry_a.cert}"
key = "{registry_a.key}"
[authz]
registry = ["imagestore-*"]
""")
        cfgs.append((cfg_a, ("registry",)))
        a.run([PY, "-m", "engine.launcher", "up", "--config", str(config_file(cfg_a)),
               "--services", "registry"], check=True)
        # Hosts B and C: an engine each, sharing A's registry service.
        engines = {}
        for name in ("b", "c"):
            cfg = _engine_host(lab[name], base, pki, registry_a.ca,
                               f"tcp://{a.ip}:{PORTS['registry']}", cgroup_parents[name])
            # B also serves the Docker API over TLS (D's docker CLI, docker-py, compose).
            services: tuple[str, ...] = (
                (*ENGINE_SERVICES, "dockerapi") if name == "b" else ENGINE_SERVICES)
            cfgs.append((cfg, services))
            engines[name] = cfg
            lab[name].run([PY, "-m", "engine.launcher", "up", "--config",
                           str(config_file(cfg)), "--services", ",".join(services)],
                          check=True)
        image = busybox_ref.replace(registry.host, counter.host)
        across = Across(lab, pki, base, image, pki.issue("client-d", ips=[]), cfg_a,
                        engines["b"], engines["c"], counter)
        try:
            yield across
        finally:  # containers a failed test left: removed through the gateway, as a user
            ids = across.cli("ps", "-aq", check=False).stdout.split()
            if ids:
                across.cli("rm", "-f", *ids, check=False)
    finally:
        leftovers: list[str] = []
        try:
            for cfg, services in reversed(cfgs):
                launcher.stop(cfg, services)
            lab.stop_processes()
            for parent in cgroup_parents.values():
                leftovers += sweep(base, parent)
        finally:
            lab.close()
            shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, leftovers


def config_file(cfg: configmod.Config) -> Path:
    return cfg.root.parent / "muelle.toml"


def test_pull_and_run_across_hosts(across: Across) -> None:
    pulled = across.cli("pull", across.image)
    assert "Status" in pulled.stdout or across.image in pulled.stdout, pulled.stdout
    assert across.image.rpartition(":")[0] in across.cli("images").stdout
    ran = across.cli("run", "--rm", "--network", "none", across.image, "echo", "hello-across")
    assert ran.stdout == "hello-across\n", ran
    # Every hop named its caller: the registry service saw B's image store, the gateway D.
    assert '"identity": "imagestore-b"' in across.log(across.cfg_a, "registry")
    assert '"identity": "client-d"' in across.log(across.cfg_b, "gateway")
    assert '"identity": "gateway-b"' in across.log(across.cfg_b, "shim")


def test_a_second_host_pulls_from_the_shared_cache(across: Across) -> None:
    """B pulled through A's registry service, so C's pull of the same image takes no blob
    from upstream: only manifests cross the counting proxy."""
    across.cli("pull", across.image)  # on B (a no-op when an earlier test pulled it)
    after_b = across.upstream.bytes()
    # B's pull brought the blobs through the proxy once (busybox: ~1 MiB compressed).
    assert after_b > 256 * 1024
    c = across.lab["c"]
    across.cli("pull", across.image, host=f"tcp://{c.ip}:{PORTS['gateway']}")
    assert across.upstream.bytes() - after_b < 64 * 1024  # manifests, no blob
    assert '"identity": "imagestore-c"' in across.log(across.cfg_a, "registry")
    ran = across.cli("run", "--rm", "--network", "none", across.image, "echo", "on-c",
                     host=f"tcp://{c.ip}:{PORTS['gateway']}")
    assert ran.stdout == "on-c\n"


def _containers(across: Across) -> str:
    return across.cli("ps", "-aq").stdout


def test_an_identity_not_allowed_is_refused_by_name(across: Across) -> None:
    before = _containers(across)
    mallory = across.pki.issue("mallory", ips=[])
    proc = across.cli("run", "--network", "none", across.image, "true", tls=mallory,
                      check=False)
    assert proc.returncode != 0
    assert "'mallory' is not allowed to call gateway" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _containers(across) == before


def test_a_client_may_not_call_the_shim_directly(across: Across) -> None:
    """client-d holds a valid certificate, but only gateways may drive a shim."""
    script = (
        "import sys\n"
        "from muelle.shim.v1 import shim_pb2, shim_pb2_grpc\n"
        "from services.core.client import connect\n"
        "from vocab.errors import PermissionDenied\n"
        "from services.core.tls import TlsFiles\n"
        "stub = connect(sys.argv[1], shim_pb2_grpc.ShimStub, 'shim', TlsFiles(*sys.argv[2:5]))\n"  # noqa: E501
        "try:\n"
        "    stub.List(shim_pb2.ListRequest())\n"
        "except PermissionDenied as exc:\n"
        "    print(exc); sys.exit(3)\n")
    c = across.client
    proc = across.lab["d"].run([PY, "-c", script, f"tcp://{across.lab['b'].ip}:"
                                f"{PORTS['shim']}", c.ca, c.cert, c.key])
    assert proc.returncode == 3, proc
    assert "'client-d' is not allowed to call shim" in proc.stdout


def test_a_certificate_of_another_ca_expired_or_none_is_refused(across: Across,
                                                         tmp_path: Path) -> None:
    before = _containers(across)
    other = Pki(tmp_path, "other").issue("client-d", ips=[])
    expired = across.pki.issue("client-old", ips=[], expired=True)
    for bad in (TlsFiles(across.client.ca, other.cert, other.key), expired):
        proc = across.cli("run", "--network", "none", across.image, "true", tls=bad,
                          check=False)
        assert proc.returncode != 0
        assert "did not accept the client certificate" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    # No client certificate at all: the handshake fails, nothing is called.
    script = (
        "import sys, grpc\n"
        "from grpc_health.v1 import health_pb2, health_pb2_grpc\n"
        "creds = grpc.ssl_channel_credentials(open(sys.argv[2], 'rb').read())\n"
        "ch = grpc.secure_channel(sys.argv[1], creds)\n"
        "try:\n"
        "    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), "
        "timeout=10)\n"
        "except grpc.RpcError as err:\n"
        "    print(err.code().name); sys.exit(3)\n")
    proc = across.lab["d"].run([PY, "-c", script, f"{across.lab['b'].ip}:{PORTS['gateway']}",
                                across.client.ca])
    assert (proc.returncode, proc.stdout.strip()) == (3, "UNAVAILABLE"), proc
    assert _containers(across) == before


def test_plain_tcp_off_loopback_is_refused(across: Across) -> None:
    b = across.lab["b"]
    # A client without TLS material does not fall back to plain TCP.
    proc = across.cli("ps", tls=TlsFiles(), check=False)
    assert proc.returncode != 0
    assert "mutual TLS" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    # A service told insecure = true on a non-loopback address refuses to start.
    config = across.base / "b" / "insecure.toml"
    config.write_text(f'root = "{across.base / "b" / "x"}"\nrun = "{across.base / "b" / "x"}"'
                      "\n[tls]\ninsecure = true\n")
    proc = b.run([PY, "-m", "services.registry.main", "--config", str(config),
                  "--address", f"tcp://{b.ip}:7499"], timeout=60)
    assert proc.returncode == 1
    assert "refusing plain TCP on tcp://" in proc.stderr and "loopback only" in proc.stderr
    assert "Traceback" not in proc.stderr


# Holds connections to the gateway's TLS port open: half send garbage and stay, half
# connect and never start the handshake; prints "ready", holds until stdin closes.
HOSTILE_PEERS = """
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    if i % 2:
        s.sendall(b"\\x16\\x03\\x01\\x00\\xff" + b"garbage" * 100)
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
"""


def test_garbage_and_stalled_handshakes_do_not_block_others(across: Across) -> None:
    """Peers that send garbage or never finish a TLS handshake hold connections to the
    gateway while client-d works: its calls still succeed (nothing waits on them)."""
    d, b = across.lab["d"], across.lab["b"]
    hostile = subprocess.Popen(
        d.argv([PY, "-c", HOSTILE_PEERS, b.ip, str(PORTS["gateway"]), "64"]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert hostile.stdout is not None
        assert hostile.stdout.readline().strip() == "ready"
        for _ in range(3):
            ran = across.cli("run", "--rm", "--network", "none", across.image,
                             "echo", "still-served")
            assert ran.stdout == "still-served\n"
        assert hostile.poll() is None  # the hostile connections were still open
    finally:
        hostile.kill()
        hostile.wait()


def _rx_bytes(host: Host) -> int:
    out = host.run(["cat", "/sys/class/net/eth0/statistics/rx_bytes"], check=True).stdout
    return int(out)


def test_a_pull_cut_off_from_the_registry_host_fails_then_resumes(
        across: Across, big_ref: str, registry: LocalRegistry) -> None:
    """C's path to A cut during a pull: the pull fails with a clear error (the gRPC
    keepalive notices the silent peer) instead of hanging; once the path is back, a
    pull resumes from the partial download: C receives only what it lacked."""
    lab, c = across.lab, across.lab["c"]
    image = big_ref.replace(registry.host, across.upstream.host)
    gateway_c = f"tcp://{c.ip}:{PORTS['gateway']}"
    lab.shape("c", "24mbit")  # ~3 MiB/s: the 16 MiB layer takes seconds to arrive
    ingest = across.cfg_c.root / "imagestore" / "ingest"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUELLE_", "DOCKER_"))}
    env.update(MUELLE_HOST=gateway_c, MUELLE_TLS_CACERT=across.client.ca,
               MUELLE_TLS_CERT=across.client.cert, MUELLE_TLS_KEY=across.client.key)
    pull = subprocess.Popen(lab["d"].argv([CLI, "pull", image]), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cut = False
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size >= 2 * 1024 * 1024 for p in ingest.glob("*.partial")):
            assert pull.poll() is None, pull.communicate()
            assert time.monotonic() < deadline, "the big layer never started arriving"
            time.sleep(0.05)
        lab.cut("c", "a")
        cut = True
        _, err = pull.communicate(timeout=120)  # bounded: keepalive ends it, no hang
        assert pull.returncode != 0
        assert "registry unavailable" in err and "Traceback" not in err, err
        assert err.strip().count("\n") == 0, err  # one line
    finally:
        if pull.poll() is None:
            pull.kill()
            pull.wait()
        if cut:
            lab.cut("c", "a", cut=False)
    lab.unshape("c")
    kept = max(p.stat().st_size for p in ingest.glob("*.partial"))
    assert 0 < kept < BIG
    before = _rx_bytes(c)
    across.cli("pull", image, host=gateway_c)
    received = _rx_bytes(c) - before
    # The rest of the layer and some overhead, not the whole layer again.
    assert received < BIG - kept + 2 * 1024 * 1024, (received, kept)


def test_the_docker_cli_over_tls_from_another_host(across: Across) -> None:
    """D's docker CLI with DOCKER_HOST=tcp://B:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH:
    version, run --rm, ps; the Docker API reaches B's gateway as dockerapi-b, D as
    client-d. (B's config names its address alone: 2376 is the default TLS port.)"""
    version = across.docker("version", "--format", "{{.Server.APIVersion}}")
    assert version.stdout.strip() == "1.41", version
    ran = across.docker("run", "--rm", "--network", "none", across.image,
                        "echo", "hello-from-d")
    assert ran.stdout == "hello-from-d\n", (ran.returncode, ran.stdout, ran.stderr)
    listed = across.docker("ps", "-a", "--format", "{{.ID}} {{.Image}}")
    assert across.image not in listed.stdout, listed.stdout  # --rm removed it
    assert '"identity": "client-d"' in across.log(across.cfg_b, "dockerapi")
    assert '"identity": "dockerapi-b"' in across.log(across.cfg_b, "gateway")


def test_the_docker_cli_refuses_other_cas_and_names_identities_not_allowed(
        across: Across, tmp_path: Path) -> None:
    before = _containers(across)
    other = Pki(tmp_path, "other").issue("client-d", ips=[])
    # The CA's files with another CA's certificate and key: the handshake fails.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for name, source in (("ca.pem", across.client.ca), ("cert.pem", other.cert),
                         ("key.pem", other.key)):
        shutil.copy(source, foreign / name)
    refused = across.docker("run", "--rm", "--network", "none", across.image, "true",
                            files=TlsFiles.from_dir(foreign), check=False)
    assert refused.returncode != 0, refused
    assert "certificate" in refused.stderr.lower(), refused.stderr
    mallory = across.pki.issue("mallory", ips=[])
    refused = across.docker("run", "--rm", "--network", "none", across.image, "true",
                            files=mallory, check=False)
    assert refused.returncode != 0, refused
    assert "identity 'mallory' is not allowed to call dockerapi" in refused.stderr, \
        refused.stderr
    assert _containers(across) == before


# docker-py on D, configured only by Docker's variables (docker.from_env()).
DOCKER_PY = """
import sys, docker
client = docker.from_env(version="1.41")
try:
    out = client.containers.run(sys.argv[1], ["echo", "hello-py"], remove=True,
                                network_mode="none")
    print(client.version()["ApiVersion"], out.decode().strip(),
          len(client.containers.list(all=True)))
except docker.errors.APIError as exc:
    print(exc.response.status_code, exc.explanation); sys.exit(3)
"""


def test_docker_py_over_tls_from_another_host(across: Across) -> None:
    before = _containers(across)
    d = across.lab["d"]
    ok = d.run([PY, "-c", DOCKER_PY, across.image], env=across.docker_env(), check=True)
    assert ok.stdout.split()[:2] == ["1.41", "hello-py"], ok
    refused = d.run([PY, "-c", DOCKER_PY, across.image],
                    env=across.docker_env(across.pki.issue("mallory", ips=[])))
    assert refused.returncode == 3, refused
    assert refused.stdout.startswith("403 ") and "'mallory'" in refused.stdout, refused
    assert _containers(across) == before


def test_compose_over_tls_from_another_host(across: Across, tmp_path: Path) -> None:
    """docker-compose 1.x on D with Docker's variables: up -d, ps, down, on the project's
    own network (compose creates it with its labels and finds it by them)."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(
        'version: "2.4"\nservices:\n  sleeper:\n'
        f'    image: "{across.image}"\n    command: ["sleep", "300"]\n')
    env = across.docker_env()
    d = across.lab["d"]

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return d.run([COMPOSE, "--project-directory", str(project), "-p", "acrossd",
                      "-f", str(project / "docker-compose.yml"), *args], env=env,
                     check=True, timeout=180)

    try:
        compose("up", "-d")
        ps = compose("ps")
        assert "acrossd_sleeper_1" in ps.stdout and "Up" in ps.stdout, ps.stdout
        running = across.docker("ps", "--format", "{{.Names}}").stdout.split()
        assert "acrossd_sleeper_1" in running, running
        networks = across.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert "acrossd_default" in networks, networks
    finally:
        down = d.run([COMPOSE, "--project-directory", str(project), "-p", "acrossd",
                      "-f", str(project / "docker-compose.yml"), "down", "-t", "1"],
                     env=env, timeout=180)
    assert down.returncode == 0, down
    assert "acrossd" not in across.docker("ps", "-a", "--format", "{{.Names}}").stdout
    assert "acrossd" not in across.docker("network", "ls", "--format", "{{.Name}}").stdout


# Asks each address's Version service over mutual TLS, as client-d (Version answers any
# certificate of the CA, as health): "component release service,service,..." per line.
ASK_VERSIONS = """
import sys
from vocab.channel import TlsFiles, channel
from vocab.versioning import ask
tls = TlsFiles(*sys.argv[1:4])
for address in sys.argv[4:]:
    with channel(address, tls) as ch:
        reply = ask(ch, timeout=10)
        print(reply.component, reply.version, ",".join(reply.services))
"""


def test_every_service_reports_its_contract_versions_across_hosts(across: Across) -> None:
    """The Version service of the registry service on A and of B's image store, shim and
    gateway, asked from D: each names itself and the contract its peers need of it (the
    names from the generated stubs the callers use)."""
    from muelle.engine.v1 import engine_pb2_grpc

    from services.core.client import Contract
    from services.gateway.main import PEERS
    from vocab.version import VERSION

    stubs = {**PEERS, "gateway": engine_pb2_grpc.EngineStub}
    hosts = {"registry": across.lab["a"], "imagestore": across.lab["b"],
             "shim": across.lab["b"], "gateway": across.lab["b"]}
    addresses = [f"tcp://{hosts[n].ip}:{PORTS[n]}" for n in stubs]
    c = across.client
    out = across.lab["d"].run([PY, "-c", ASK_VERSIONS, c.ca, c.cert, c.key, *addresses],
                              check=True).stdout.splitlines()
    for line, (name, stub) in zip(out, stubs.items(), strict=True):
        component, release, services = line.split()
        contract = Contract.of(stub, name, "")
        assert contract is not None
        assert (component, release) == (name, VERSION)
        assert contract.name in services.split(","), line
        assert "muelle.version.v1.Version" in services.split(",")
    version = across.cli("version").stdout
    for name in PEERS:  # the engine's Version shows each neighbour's own release
        assert f"{name + ':':<12} {VERSION} (serving)" in version, version


def test_the_muelle_cli_takes_dockers_tls_flags_and_cert_path(across: Across) -> None:
    """D's muelle CLI with Docker's spellings: --tlsverify --tlscacert --tlscert --tlskey
    and -H, or MUELLE_TLS_VERIFY with MUELLE_CERT_PATH (ca.pem, cert.pem, key.pem)."""
    c, gateway = across.client, f"tcp://{across.lab['b'].ip}:{PORTS['gateway']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUELLE_", "DOCKER_"))}
    flags = across.lab["d"].run(
        [CLI, "--tlsverify", "--tlscacert", c.ca, "--tlscert", c.cert, "--tlskey", c.key,
         "-H", gateway, "run", "--rm", "--network", "none", across.image, "echo", "flags"],
        env=env, check=True)
    assert flags.stdout == "flags\n"
    env.update(MUELLE_HOST=gateway, MUELLE_TLS_VERIFY="1",
               MUELLE_CERT_PATH=str(Path(c.cert).parent))
    listed = across.lab["d"].run([CLI, "version"], env=env, check=True)
    assert "gateway:" in listed.stdout


NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"


def test_the_node_client_runs_a_container_from_another_host(across: Across) -> None:
    """D's Node.js client (clients/node, @grpc/grpc-js over mutual TLS) runs a container on
    B: the container's output and exit code come back; mallory's certificate is refused."""
    node = shutil.which("node")
    assert node, "node is needed (apt-get install nodejs)"
    assert (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir(), \
        "clients/node has no node_modules: run `make node` (make test does)"
    c, gateway = across.client, f"tcp://{across.lab['b'].ip}:{PORTS['gateway']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUELLE_", "DOCKER_"))}
    env.update(MUELLE_HOST=gateway, MUELLE_CERT_PATH=str(Path(c.cert).parent))
    example = str(NODE_DIR / "example.js")
    ran = across.lab["d"].run([node, example, across.image, "sh", "-c",
                               "echo from-node-on-d; exit 7"], env=env)
    assert (ran.returncode, ran.stdout) == (7, "from-node-on-d\n"), ran
    env["MUELLE_CERT_PATH"] = str(Path(across.pki.issue("mallory", ips=[],
                                                        kind="client").cert).parent)
    refused = across.lab["d"].run([node, example, across.image, "true"], env=env)
    assert refused.returncode != 0
    assert "mallory" in refused.stderr + refused.stdout, refused
