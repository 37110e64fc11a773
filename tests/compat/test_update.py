"""`docker update --restart` against muelle's Docker API and a private dockerd: the new
policy shows in inspect and applies to the running container; resource updates, which
muelle cannot do yet, are refused by name."""

from __future__ import annotations

import time
import uuid

from tests.compat.conftest import DockerCli


def _update(docker: DockerCli, image: str) -> list[str]:
    name = f"upd-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "--name", name, image, "sh", "-c",
           "while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 3")
    try:
        seen = [docker("update", "--restart", "on-failure:1", name).stdout.strip()]
        fmt = "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        seen.append(docker("inspect", "-f", fmt, name).stdout.strip())
        docker("exec", name, "touch", "/tmp/go")  # it exits 3, restarts once, exits again
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = docker("inspect", "-f", "{{.RestartCount}} {{.State.Status}} "
                           "{{.State.ExitCode}}", name).stdout.strip()
            if state == "1 exited 3":
                break
            time.sleep(0.1)
        seen.append(state)
        return seen
    finally:
        docker("rm", "-f", name)


def test_update_restart_policy_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                             pulled: str) -> None:
    on_muelle = _update(muelle_cli, pulled)
    on_dockerd = _update(dockerd_cli, pulled)
    assert on_muelle[1:] == ["on-failure 1", "1 exited 3"]
    assert on_muelle[0].startswith("upd-") and on_dockerd[0].startswith("upd-")  # the name
    assert on_muelle[1:] == on_dockerd[1:]


def test_resource_updates_are_refused_by_name(muelle_cli: DockerCli, pulled: str) -> None:
    docker = muelle_cli
    name = f"upd-{uuid.uuid4().hex[:6]}"
    docker("create", "--name", name, pulled, "true")
    try:
        proc = docker("update", "--memory", "64m", name, check=False)
        assert proc.returncode == 1
        assert "updating Memory is not supported by muelle yet" in proc.stderr
        missing = docker("update", "--restart", "always", "nosuch-ctr", check=False)
        assert missing.returncode == 1 and "No such container: nosuch-ctr" in missing.stderr
    finally:
        docker("rm", "-f", name)
