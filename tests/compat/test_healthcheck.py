"""Health checks with the real clients: the docker CLI's --health-* flags and an image's
HEALTHCHECK, side by side with a private dockerd (the stored check, the status sequence,
`ps`, the health_status events, bad values); docker-compose 1.29's `depends_on: condition:
service_healthy`; muelle's own CLI flags. Probes run every second; states are waited for
(bounded), never timed."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker as docker_py
import pytest

from tests.compat.conftest import DockerCli
from tests.support.engine import Engine

COMPOSE = "/usr/bin/docker-compose"
WAIT = 60.0  # s: the bound of every wait for a state (probes come every second)


def _until(look: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = look()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never {what}")
        time.sleep(0.1)


def _inspect(docker: DockerCli, name: str) -> dict[str, Any]:
    return json.loads(docker("inspect", name).stdout)[0]  # type: ignore[no-any-return]


def _health(docker: DockerCli, name: str) -> dict[str, Any] | None:
    return _inspect(docker, name)["State"].get("Health")  # type: ignore[no-any-return]


def _status(docker: DockerCli, name: str) -> str:
    """`ps` STATUS of ``name`` (listed by name: a name filter is a regex for dockerd)."""
    rows = docker("ps", "-a", "--format", "{{.Names}}\t{{.Status}}").stdout.splitlines()
    return next(r.split("\t", 1)[1] for r in rows if r.split("\t", 1)[0] == name)


class _Watch:
    """The distinct health statuses inspect shows of one container, oldest first."""

    def __init__(self, docker: DockerCli, name: str) -> None:
        self.docker, self.name, self.seen = docker, name, list[str]()

    def look(self) -> str:
        health = _health(self.docker, self.name)
        status = health["Status"] if health else "none"
        if not self.seen or self.seen[-1] != status:
            self.seen.append(status)
        return status

    def until(self, last: str) -> list[str]:
        _until(lambda: self.look() == last, f"{self.name} {last} (saw {self.seen})")
        return self.seen

    def reaches(self, last: str) -> list[str]:
        """``until``, for a container whose first probes may have run before the first
        look (a loaded machine): "starting" need not be seen, nothing else between."""
        seen = self.until(last)
        return seen if seen == [last] else seen[1:] if seen[0] == "starting" else seen


def _life(docker: DockerCli, image: str, hc_image: str, tag: str) -> dict[str, Any]:
    """One engine's answers, times and IDs left out. The containers start one after the
    other, each looked at once at once (its first status), then waited for together."""
    ready, failing, off = f"hc-ready-{tag}", f"hc-fail-{tag}", f"hc-off-{tag}"
    slow = f"hc-slow-{tag}"
    seen: dict[str, Any] = {}
    since = str(time.time() - 1)

    def run(name: str, *args: str) -> _Watch:
        docker("run", "-d", "--name", name, *args, "sleep", "300")
        watch = _Watch(docker, name)
        watch.look()
        return watch

    try:
        # Fails until /tmp/ready exists; in a long start period those failures do not count.
        on_ready = run(ready, "--health-cmd", "test -f /tmp/ready", "--health-interval", "1s",
                       "--health-timeout", "5s", "--health-retries", "2",
                       "--health-start-period", "5m", image)
        on_failing = run(failing, "--health-cmd", "echo nope; exit 3", "--health-interval",
                         "1s", "--health-retries", "2", image)
        # A probe past its timeout is killed and fails.
        on_slow = run(slow, "--health-cmd", "sleep 30", "--health-interval", "1s",
                      "--health-timeout", "1s", "--health-retries", "1", image)
        # The image's HEALTHCHECK applies; --no-healthcheck turns it off.
        on_image = run(off + "-img", hc_image)
        run(off, "--no-healthcheck", hc_image)

        seen["config"] = _inspect(docker, ready)["Config"]["Healthcheck"]
        seen["ps starting"] = _status(docker, ready).endswith("(health: starting)")
        docker("exec", ready, "touch", "/tmp/ready")
        seen["ready"] = on_ready.until("healthy")
        health = _health(docker, ready)
        assert health is not None
        seen["ready streak"] = health["FailingStreak"]
        seen["ready last"] = (health["Log"][-1]["ExitCode"], health["Log"][-1]["Output"])
        seen["ps healthy"] = _status(docker, ready).endswith("(healthy)")
        seen["filter"] = ready in docker("ps", "--filter", "health=healthy", "--format",
                                         "{{.Names}}").stdout.split()

        seen["failing"] = on_failing.reaches("unhealthy")
        health = _health(docker, failing)
        assert health is not None
        seen["failing streak>=2"] = health["FailingStreak"] >= 2
        seen["failing last"] = (health["Log"][-1]["ExitCode"], health["Log"][-1]["Output"])
        seen["log size<=5"] = len(health["Log"]) <= 5
        seen["ps unhealthy"] = _status(docker, failing).endswith("(unhealthy)")

        seen["slow"] = on_slow.reaches("unhealthy")
        health = _health(docker, slow)
        assert health is not None
        seen["slow last"] = (health["Log"][0]["ExitCode"], health["Log"][0]["Output"])

        seen["off config"] = _inspect(docker, off)["Config"].get("Healthcheck")
        seen["off health"] = _health(docker, off)
        seen["off ps"] = _status(docker, off).startswith("Up") and "health" not in _status(
            docker, off)
        seen["image config"] = _inspect(docker, off + "-img")["Config"]["Healthcheck"]
        seen["image"] = on_image.reaches("healthy")

        # A commit keeps the container's check in the image (as dockerd's).
        docker("commit", ready, f"hc-commit-{tag}:1")
        seen["commit"] = json.loads(docker("image", "inspect", "-f",
                                           "{{json .Config.Healthcheck}}",
                                           f"hc-commit-{tag}:1").stdout)
        docker("rmi", f"hc-commit-{tag}:1")
        # The commit paused it: unhealthy (dockerd's, with no event) until the next probe
        # after the unpause makes it healthy again (an event).
        _Watch(docker, ready).until("healthy")

        until = str(time.time() + 1)
        events = docker("events", "--since", since, "--until", until, "--filter",
                        "event=health_status", "--format",
                        "{{.Action}} {{.Actor.Attributes.name}}").stdout.splitlines()
        seen["events"] = sorted(e.replace(tag, "TAG") for e in events)
        # Each probe is an exec, in events too: exec_create, exec_start, exec_die.
        probes = docker("events", "--since", since, "--until", until, "--filter",
                        f"container={failing}", "--filter", "event=exec_create", "--filter",
                        "event=exec_start", "--filter", "event=exec_die", "--format",
                        "{{.Action}}|{{.Actor.Attributes.exitCode}}|"
                        "{{.Actor.Attributes.execID}}").stdout.splitlines()
        seen["probe events"] = sorted({"|".join((*p.split("|")[:2], str(len(p.split(
            "|")[2])))) for p in probes})
    finally:
        docker("rm", "-f", ready, failing, slow, off, off + "-img", check=False)
    return seen


@pytest.fixture(scope="module")
def hc_images(muelle_cli: DockerCli, dockerd_cli: DockerCli, pulled: str,
              tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image built FROM the test busybox with a HEALTHCHECK, on both engines."""
    ctx = tmp_path_factory.mktemp("hc-image")
    (ctx / "Dockerfile").write_text(
        f"FROM {pulled}\nHEALTHCHECK --interval=1s --timeout=3s --retries=2 "
        "CMD [\"true\"]\n")
    tag = f"hc-image-{uuid.uuid4().hex[:6]}:1"
    for docker in (muelle_cli, dockerd_cli):
        classic = DockerCli(docker.binary, dict(docker.env, DOCKER_BUILDKIT="0"))
        classic("build", "-q", "-t", tag, str(ctx), timeout=120)
    return tag


def test_health_checks_match_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                     pulled: str, hc_images: str) -> None:
    tag = uuid.uuid4().hex[:6]
    with ThreadPoolExecutor(2) as pool:  # both engines at once: the waits overlap
        muelle_side = pool.submit(_life, muelle_cli, pulled, hc_images, tag)
        dockerd_side = pool.submit(_life, dockerd_cli, pulled, hc_images, tag)
        on_muelle, on_dockerd = muelle_side.result(), dockerd_side.result()
    assert on_muelle == on_dockerd
    assert on_muelle["config"] == {"Test": ["CMD-SHELL", "test -f /tmp/ready"],
                                   "Interval": 1_000_000_000, "Timeout": 5_000_000_000,
                                   "StartPeriod": 300_000_000_000, "Retries": 2}
    assert on_muelle["ready"] == ["starting", "healthy"]
    assert on_muelle["ready streak"] == 0
    assert on_muelle["failing"] == ["unhealthy"]
    assert on_muelle["failing last"] == (3, "nope\n")
    assert on_muelle["probe events"] == [  # "<no value>": no exitCode attribute
        "exec_create: /bin/sh -c echo nope; exit 3|<no value>|64", "exec_die|3|64",
        "exec_start: /bin/sh -c echo nope; exit 3|<no value>|64"]
    assert on_muelle["slow"] == ["unhealthy"]
    assert on_muelle["slow last"] == (-1, "Health check exceeded timeout (1s)")
    assert on_muelle["off health"] is None
    assert on_muelle["off config"]["Test"] == ["NONE"]
    assert on_muelle["commit"] == on_muelle["config"]
    assert on_muelle["image config"] == {"Test": ["CMD", "true"], "Interval": 1_000_000_000,
                                         "Timeout": 3_000_000_000, "Retries": 2}
    assert on_muelle["events"] == sorted([
        "health_status: healthy hc-ready-TAG", "health_status: unhealthy hc-fail-TAG",
        "health_status: healthy hc-off-TAG-img", "health_status: healthy hc-ready-TAG",
        "health_status: unhealthy hc-slow-TAG"])


def test_bad_values_are_refused_like_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                             pulled: str) -> None:
    """What the CLI lets through (a duration under 1 ms) and what only the API takes (a
    negative retries: the CLI refuses it itself): dockerd's 400, nothing created."""
    answers = []
    for docker in (muelle_cli, dockerd_cli):
        name = f"hc-bad-{uuid.uuid4().hex[:6]}"
        proc = docker("create", "--name", name, "--health-cmd", "true", "--health-interval",
                      "500us", pulled, "true", check=False)
        answers.append((proc.returncode, proc.stdout, proc.stderr))
        client = docker_py.APIClient(base_url=docker.env["DOCKER_HOST"], timeout=60)
        try:
            with pytest.raises(docker_py.errors.APIError) as caught:
                client.create_container(pulled, "true", name=name, healthcheck={
                    "Test": ["CMD", "true"], "Retries": -1})
            assert caught.value.status_code == 400
            assert "Retries in Healthcheck cannot be negative" in str(caught.value)
        finally:
            client.close()
        assert docker("ps", "-aq", "--filter", f"name={name}").stdout == ""
    assert answers[0] == answers[1]
    assert answers[0] == (1, "", "Error response from daemon: Interval in Healthcheck cannot "
                                 "be less than 1ms\n")


COMPOSE_APP = """\
version: "2.4"
services:
  db:
    image: ${IMG}
    command: ["sh", "-c", "sleep 1; touch /tmp/up; exec sleep 1000"]
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/up"]
      interval: 1s
      timeout: 5s
      retries: 30
  app:
    image: ${IMG}
    command: ["sleep", "1000"]
    depends_on:
      db:
        condition: service_healthy
"""


def test_compose_waits_for_service_healthy(docker_engine: Engine, pulled: str,
                                           tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_APP)
    (tmp_path / "config").mkdir()
    env = dict(os.environ, DOCKER_HOST=docker_engine.docker_host,
               DOCKER_CONFIG=str(tmp_path / "config"), IMG=pulled)
    env.pop("DOCKER_CONTEXT", None)
    project = f"hc{uuid.uuid4().hex[:6]}"

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([COMPOSE, "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"docker-compose {args}: {proc.stdout}{proc.stderr}"
        return proc

    try:
        compose("up", "-d")  # returns once db is healthy and app started
        ps = compose("ps").stdout
        assert "(healthy)" in ps and ps.count(" Up ") == 2, ps
        db = json.loads(subprocess.run(
            ["/usr/bin/docker", "inspect", f"{project}_db_1"], env=env, capture_output=True,
            text=True, check=True, timeout=60).stdout)[0]
        assert db["State"]["Health"]["Status"] == "healthy"
    finally:
        subprocess.run([COMPOSE, "-p", project, "down", "-v", "-t", "0"], cwd=tmp_path, env=env,
                       capture_output=True, timeout=180)


def test_muelle_cli_health_flags(docker_engine: Engine, pulled: str) -> None:
    name = f"hc-cli-{uuid.uuid4().hex[:6]}"
    cli = docker_engine.cli
    try:
        cli("run", "-d", "--name", name, "--health-cmd", "echo fine",
            "--health-interval", "1s", "--health-timeout=2s", "--health-retries", "4",
            "--health-start-period", "1m", pulled, "sleep", "300")

        def inspected() -> dict[str, Any]:
            return json.loads(cli("inspect", name).stdout)[0]  # type: ignore[no-any-return]

        assert inspected()["Config"]["Healthcheck"] == {
            "Test": ["CMD-SHELL", "echo fine"], "Interval": 1_000_000_000,
            "Timeout": 2_000_000_000, "StartPeriod": 60_000_000_000, "Retries": 4}
        health = _until(lambda: (h := inspected()["State"].get("Health")) and
                        h["Status"] == "healthy" and h, "healthy")
        assert health["Log"][-1]["Output"] == "fine\n"
        assert "(healthy)" in cli("ps", "--filter", f"name={name}").stdout
        assert cli("ps", "-q", "--filter", "health=healthy", "--filter",
                   f"name={name}").stdout.strip() != ""
        assert cli("ps", "-q", "--filter", "health=none", "--filter",
                   f"name={name}").stdout.strip() == ""
        bad = cli("create", "--health-cmd", "true", "--health-interval=500us", pulled,
                  check=False)
        assert bad.returncode != 0 and "Interval in Healthcheck cannot be less than 1ms" \
            in bad.stderr and "Traceback" not in bad.stderr
        bad = cli("create", "--health-cmd", "true", "--health-retries=-1", pulled,
                  check=False)
        assert bad.returncode != 0 and "--health-retries cannot be negative" in bad.stderr
        bad = cli("create", "--no-healthcheck", "--health-cmd", "true", pulled, check=False)
        assert bad.returncode != 0 and "conflicts with --health-*" in bad.stderr
    finally:
        cli("rm", "-f", name, check=False)
