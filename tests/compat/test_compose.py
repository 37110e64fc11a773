"""docker-compose 1.29 (Debian's) against muelle's Docker API, side by side with a private
dockerd: the same two-service app, the same commands, the same results.

The app: ``web`` (busybox httpd serving a page its environment wrote into a named volume,
its port published on loopback) and ``client`` (depends_on web, fetches the page by the
service name), and ``reader`` (volumes_from web, read-only; links web as www). Compose
labels its network
and volume and finds them again by label, disconnects each created container from its
network and connects it again with aliases: both must keep the published port and name
resolution working.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.docker import Dockerd
from tests.support.engine import Engine

COMPOSE = "/usr/bin/docker-compose"

APP = """\
version: "3.7"
services:
  web:
    image: ${IMG}
    command: ["sh", "-c", "echo $$GREETING > /srv/index.html; exec httpd -f -v -p 80 -h /srv"]
    environment:
      GREETING: hello-from-web
    ports:
      - "127.0.0.1::80"
    volumes:
      - site:/srv
  client:
    image: ${IMG}
    depends_on:
      - web
    command: ["sh", "-c",
              "until wget -q -O- http://web/index.html; do sleep 0.2; done; exec sleep 1000"]
  reader:
    image: ${IMG}
    volumes_from:
      - web:ro
    links:
      - web:www
    command: ["sh", "-c", "until cat /srv/index.html; do sleep 0.2; done; touch /srv/x ||
              echo read-only; until wget -q -O /dev/null http://www/index.html; do sleep
              0.2; done; echo linked; exec sleep 1000"]
volumes:
  site:
"""


@dataclass
class Compose:
    host: str
    project: str
    workdir: Path
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([COMPOSE, "-p", self.project, *args], cwd=self.workdir,
                              env=self.env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {proc.returncode} "
                                 f"against {self.host}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def docker(self, *args: str) -> str:
        return subprocess.run(["/usr/bin/docker", *args], env=self.env, capture_output=True,
                              text=True, timeout=60, check=True).stdout


def _compose(side: str, host: str, image: str, tmp_path: Path) -> Compose:
    workdir = tmp_path / side
    workdir.mkdir()
    (workdir / "docker-compose.yml").write_text(APP)
    (workdir / "config").mkdir()
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_CONFIG=str(workdir / "config"), IMG=image)
    env.pop("DOCKER_CONTEXT", None)
    return Compose(host, f"app{uuid.uuid4().hex[:6]}", workdir, env)


def _ps(c: Compose) -> list[tuple[str, str, str]]:
    """(container, state, ports with the host port masked) per row of `ps`."""
    rows = []
    for line in c("ps").stdout.splitlines()[2:]:
        name = line.split()[0].removeprefix(c.project)
        state = "Up" if " Up " in line else line
        ports = line.rsplit("Up", 1)[-1].strip()
        host, sep, rest = ports.partition("->")
        masked = host.rpartition(":")[0] + ":N->" + rest if sep else ports
        rows.append((name, state, masked))
    return sorted(rows)


def _wait_for_log(c: Compose, service: str, text: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logs = c("logs", "--no-color", service).stdout
        if text in logs:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{service} never logged {text!r}: {logs}")


def _fetch(address: str) -> bytes:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # httpd may not listen yet right after a restart
        try:
            with urllib.request.urlopen(f"http://{address}/index.html", timeout=2) as r:
                return bytes(r.read())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{address} never answered")


def _published(c: Compose, fetch: bool) -> object:
    """The address `port` shows (host port masked), and what it serves when ``fetch``:
    the private dockerd runs without its userland proxy and netfilter rules (it must not
    touch the host's), so its published ports are reserved but not served."""
    address = c("port", "web", "80").stdout.strip()
    masked = address.rpartition(":")[0] + ":N"
    return (masked, _fetch(address)) if fetch else masked


def _run_app(c: Compose, fetch: bool) -> dict[str, object]:
    """The issue's sequence; what each step shows, IDs, ports and times masked."""
    seen: dict[str, object] = {}
    try:
        seen["up"] = c("up", "-d").returncode
        seen["ps"] = _ps(c)
        seen["client reached web"] = _wait_for_log(c, "client", "hello-from-web")
        seen["reader shares web's volume"] = _wait_for_log(c, "reader", "read-only")
        seen["reader reaches web by its link"] = _wait_for_log(c, "reader", "linked")
        seen["published"] = _published(c, fetch)
        ex = c("exec", "-T", "web", "sh", "-c", "echo $GREETING; ls /srv")
        seen["exec"] = (ex.returncode, ex.stdout)
        seen["restart"] = c("restart").returncode
        seen["ps after restart"] = _ps(c)
        seen["published after restart"] = _published(c, fetch)
    finally:
        seen["down"] = c("down", "-v").returncode
    label = f"label=com.docker.compose.project={c.project}"
    seen["left"] = (c.docker("ps", "-aq", "--filter", label),
                    c.docker("network", "ls", "-q", "--filter", label),
                    c.docker("volume", "ls", "-q", "--filter", label))
    return seen


def test_two_service_app_runs_as_on_dockerd(docker_engine: Engine, dockerd: Dockerd,
                                            pulled: str, tmp_path: Path) -> None:
    on_muelle = _run_app(_compose("muelle", docker_engine.docker_host, pulled, tmp_path),
                         fetch=True)
    on_dockerd = _run_app(_compose("dockerd", dockerd.host, pulled, tmp_path), fetch=False)
    for key in ("published", "published after restart"):
        assert on_muelle[key] == ("127.0.0.1:N", b"hello-from-web\n")
        on_muelle[key] = "127.0.0.1:N"
    assert on_muelle == on_dockerd
    assert on_muelle["ps"] == [("_client_1", "Up", ""), ("_reader_1", "Up", ""),
                               ("_web_1", "Up", "127.0.0.1:N->80/tcp")]
    assert on_muelle["exec"] == (0, "hello-from-web\nindex.html\n")
    assert on_muelle["left"] == ("", "", "")
