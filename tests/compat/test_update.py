"""`docker update --restart` against muelle's Docker API and a private dockerd: the new
policy shows in inspect and applies to the running container; new resource limits reach
the live cgroup, show in inspect and hold after a restart."""

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


CGROUP = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
          "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null; "
          "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares "
          "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpuset/cpuset.cpus")
SHOWN = ("{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} "
         "{{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpusetCpus}}")


def _resources(docker: DockerCli, image: str) -> list[str]:
    name = f"upd-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "--name", name, "-m", "64m", image, "sleep", "1000")
    try:
        seen = [docker("update", "-m", "96m", "--memory-swap", "192m", "--cpus", "0.5",
                       "--cpu-shares", "512", "--pids-limit", "50", "--cpuset-cpus", "0",
                       name).stdout.strip()]
        seen.append(docker("exec", name, "sh", "-c", CGROUP).stdout)
        seen.append(docker("inspect", "-f", SHOWN, name).stdout)
        refused = docker("update", "--blkio-weight", "300", name, check=False)
        seen.append(f"{refused.returncode} {refused.stderr.strip()}")
        docker("restart", "-t", "0", name)  # the new limits hold for the next run too
        seen.append(docker("exec", name, "sh", "-c", CGROUP).stdout)
        missing = docker("update", "--memory", "64m", "nosuch-ctr", check=False)
        seen.append(f"{missing.returncode} {'No such container: nosuch-ctr' in missing.stderr}")
        return seen
    finally:
        docker("rm", "-f", name)


def test_resource_updates_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                        pulled: str) -> None:
    on_muelle = _resources(muelle_cli, pulled)
    on_dockerd = _resources(dockerd_cli, pulled)
    assert on_muelle[0].startswith("upd-") and on_dockerd[0].startswith("upd-")
    assert on_muelle[1] == f"{96 << 20}\n{192 << 20}\n50000\n512\n50\n0\n"
    assert on_muelle[2] == f"{96 << 20} {192 << 20} 500000000 512 50 0\n"
    # dockerd sets a blkio weight; muelle refuses it by name, changing nothing
    assert on_muelle[3] == ("1 Error response from daemon: updating BlkioWeight is not "
                            "supported by muelle yet")
    assert on_dockerd[3] == "0 "
    assert on_muelle[1:3] + on_muelle[4:] == on_dockerd[1:3] + on_dockerd[4:]
