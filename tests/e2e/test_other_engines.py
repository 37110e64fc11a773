"""Other engines run containers with muelle-runtime: Debian's dockerd (--add-runtime) and
podman (--runtime) run, exec, -it, stop and rm them. Each engine is private (its own
dirs, sockets, cgroup parent; no network for the containers) and removed afterwards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.docker import Dockerd
from tests.support.podman import PODMAN, Podman

pytestmark = pytest.mark.root

RUNTIME = str(Path(sys.executable).parent / "muelle-runtime")
TYPED = "echo tty-$((6*7)); tty; exit\n"  # what the "user" types into -it


def on_terminal(argv: list[str], env: dict[str, str]) -> str:
    """Run ``argv`` on a pseudo-terminal (script(1)), typing TYPED; its output."""
    command = " ".join(f"'{a}'" for a in argv)
    proc = subprocess.run(["script", "-qefc", command, "/dev/null"], input=TYPED, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    with Dockerd(extra_args=(f"--add-runtime=muelle={RUNTIME}",)) as d:
        yield d


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    if shutil.which(PODMAN) is None:
        pytest.fail("podman is missing: `make setup` installs it (APT_PACKAGES)")
    with Podman(RUNTIME) as p:
        yield p


def test_dockerd_runs_containers_with_muelle_runtime(dockerd: Dockerd, busybox_ref: str
                                                     ) -> None:
    d = dockerd
    d.docker("pull", busybox_ref)
    out = d.docker("run", "--rm", "--runtime", "muelle", "--network", "none", busybox_ref,
                   "sh", "-c", "echo pid=$$; id -u").stdout
    assert out == "pid=1\n0\n"
    cid = d.docker("run", "-d", "--runtime", "muelle", "--name", "mu-web", busybox_ref,
                   "sleep", "300").stdout.strip()
    assert d.docker("inspect", "-f", "{{.HostConfig.Runtime}}", cid).stdout == "muelle\n"
    # muelle-runtime holds the container's state (runc's state.json has other keys)
    states = [p for p in d.exec_root.rglob(f"{cid}/state.json") if "containerd" not in p.parts]
    assert states and "start_time" in json.loads(states[0].read_text())
    state = subprocess.run([RUNTIME, "--root", str(states[0].parent.parent), "state", cid],
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(state)["status"] == "running"
    assert d.docker("exec", "mu-web", "echo", "exec-ok").stdout == "exec-ok\n"
    typed = on_terminal(d.argv("exec", "-it", "mu-web", "sh"), d.env())
    assert "tty-42" in typed and "/dev/pts/" in typed
    typed = on_terminal(d.argv("run", "--rm", "-it", "--runtime", "muelle", busybox_ref, "sh"),
                        d.env())
    assert "tty-42" in typed and "/dev/pts/" in typed
    d.docker("stop", "-t", "1", "mu-web")
    status = d.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid).stdout
    assert status == "exited 137\n"  # sleep as pid 1 ignores SIGTERM: killed after -t 1
    d.docker("rm", "mu-web")
    assert d.docker("ps", "-aq").stdout == ""
    assert not states[0].exists()


def test_podman_runs_containers_with_muelle_runtime(podman: Podman, busybox_ref: str) -> None:
    p = podman
    p.podman("pull", "--tls-verify=false", busybox_ref)
    out = p.podman("run", "--rm", busybox_ref, "sh", "-c", "echo pid=$$; id -u").stdout
    assert out == "pid=1\n0\n"
    p.podman("run", "-d", "--name", "mu-web", busybox_ref, "sleep", "300")
    got = p.podman("inspect", "-f", "{{.OCIRuntime}} {{.State.Status}}", "mu-web").stdout
    assert got == f"{RUNTIME} running\n"
    assert p.podman("exec", "mu-web", "echo", "exec-ok").stdout == "exec-ok\n"
    typed = on_terminal(p.argv("exec", "-it", "mu-web", "sh"), p.env())
    assert "tty-42" in typed and "/dev/pts/" in typed
    typed = on_terminal(p.argv("run", "--rm", "-it", busybox_ref, "sh"), p.env())
    assert "tty-42" in typed and "/dev/pts/" in typed
    p.podman("stop", "-t", "1", "mu-web")
    assert p.podman("inspect", "-f", "{{.State.Status}}", "mu-web").stdout == "exited\n"
    p.podman("rm", "mu-web")
    assert p.podman("ps", "-aq").stdout == ""
