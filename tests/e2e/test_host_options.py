"""muelle run's --add-host, --ulimit, --shm-size, --device and --oom-score-adj, under each
OCI runtime, and their bad values refused before anything is made."""

from __future__ import annotations

import json
import resource

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root

SCRIPT = ("tail -n 3 /etc/hosts | cut -f2; ulimit -n; ulimit -Hn; ulimit -u; "
          "df -k /dev/shm | tail -n 1 | awk '{print $2}'; "
          "echo hi > /dev/mynull && echo wrote; ls -l /dev/mynull | cut -c1; "
          "cat /proc/self/oom_score_adj")


@pytest.mark.parametrize("runtime", ["muelle", "runc", "crun"])
def test_host_options_reach_the_container(engine: Engine, image: str, runtime: str) -> None:
    out = engine.cli("run", "--rm", "--runtime", runtime, "--add-host", "db:10.1.2.3",
                     "--add-host", "v6:fd00::1", "--ulimit", "nofile=1024:2048",
                     "--ulimit", "nproc=200", "--shm-size", "128m",
                     "--device", "/dev/null:/dev/mynull:rw", "--oom-score-adj", "300",
                     "--name", f"hostopts-{runtime}", image, "sh", "-c", SCRIPT).stdout
    # The last hosts lines: the two added, then the container's own address.
    lines = out.splitlines()
    assert lines[:2] == ["db", "v6"], out
    assert lines[3:] == ["1024", "2048", "200", "131072", "wrote", "c", "300"], out


MEMORY = ("cd /sys/fs/cgroup/memory; cat memory.soft_limit_in_bytes memory.swappiness; "
          "grep oom_kill_disable memory.oom_control; "
          "grep -c '^c 42:\\* r$' /sys/fs/cgroup/devices/devices.list")


@pytest.mark.parametrize("runtime", ["muelle", "runc", "crun"])
def test_memory_and_device_rule_options_reach_the_cgroup(engine: Engine, image: str,
                                                        runtime: str) -> None:
    """--memory-reservation, --memory-swappiness, --oom-kill-disable and
    --device-cgroup-rule through muelle's CLI, under each runtime (cgroup v1 here)."""
    out = engine.cli("run", "--rm", "--runtime", runtime, "-m", "64m",
                     "--memory-reservation", "32m", "--memory-swappiness", "5",
                     "--oom-kill-disable", "--device-cgroup-rule", "c 42:* r", image, "sh",
                     "-c", MEMORY).stdout
    assert out == "33554432\n5\noom_kill_disable 1\n1\n"


@pytest.mark.parametrize("runtime", ["muelle", "runc", "crun"])
def test_a_read_only_container_starts_in_a_working_dir_its_image_lacks(
        engine: Engine, image: str, runtime: str) -> None:
    out = engine.cli("run", "--rm", "--runtime", runtime, "--read-only", "-w",
                     "/made/here", image, "sh", "-c", "pwd; touch x || echo read-only").stdout
    assert out == "/made/here\nread-only\n"


def test_host_options_in_inspect(engine: Engine, image: str) -> None:
    engine.cli("create", "--name", "hostopts-inspect", "--add-host", "db:10.1.2.3",
               "--ulimit", "nofile=100", "--shm-size", "1g", "--device", "/dev/zero",
               "--oom-score-adj", "5", image, "true")
    try:
        host = json.loads(engine.cli("inspect", "hostopts-inspect").stdout)[0]["HostConfig"]
    finally:
        engine.cli("rm", "hostopts-inspect")
    assert host["ExtraHosts"] == ["db:10.1.2.3"]
    assert host["Ulimits"] == [{"Name": "nofile", "Hard": 100, "Soft": 100}]
    assert host["ShmSize"] == 1 << 30
    assert host["Devices"] == [{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero",
                                "CgroupPermissions": "rwm"}]
    assert host["OomScoreAdj"] == 5


def test_bad_host_options_are_refused(engine: Engine, image: str) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    cases = [
        (["--add-host", "nocolon"], 'invalid argument "nocolon" for "--add-host" flag'),
        (["--add-host", "db:not-an-ip"], "invalid IP address in add-host"),
        (["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
        (["--ulimit", "nofile=20:10"], "soft limit must be less than or equal"),
        (["--shm-size", "lots"], 'for "--shm-size" flag'),
        (["--device", "/dev/null:relative"], "relative is not an absolute path"),
        (["--device", "/dev/null:/dev/x:rwx"], "bad mode specified: rwx"),
        (["--device", "/etc/passwd"], '"/etc/passwd": not a device node'),
        (["--oom-score-adj", "5000"], "range for oom score adj is [-1000, 1000]"),
    ]
    if hard != resource.RLIM_INFINITY:
        cases.append((["--ulimit", f"nofile={hard + 1}"], "above this host's"))
    for flags, message in cases:
        proc = engine.cli("run", "--rm", *flags, image, "true", check=False)
        assert proc.returncode == 125, (flags, proc.stderr)
        assert message in proc.stderr, (flags, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = engine.cli("run", "--rm", "--device", "/dev/nonexistent", image, "true",
                      check=False)
    assert proc.returncode == 127, proc.stderr  # docker run's code for "no such file"
    assert '"/dev/nonexistent": no such file or directory' in proc.stderr
    assert engine.cli("ps", "-aq").stdout.strip() == ""


@pytest.mark.parametrize("runtime", ["muelle", "runc"])
def test_host_options_hold_for_exec_restart_peers_and_host_network(
        engine: Engine, image: str, runtime: str) -> None:
    net, name = f"hostopts-net-{runtime}", f"hostopts-peer-{runtime}"
    engine.cli("network", "create", net)
    try:
        engine.cli("run", "-d", "--name", name, "--runtime", runtime, "--network", net,
                   "--add-host", "db:10.1.2.3", "--ulimit", "core=-1",
                   "--ulimit", "nofile=1000:1000", image, "sleep", "300")
        engine.cli("run", "-d", "--name", f"{name}-2", "--network", net, image,
                   "sleep", "300")
        out = engine.cli("exec", name, "sh", "-c", "ulimit -c; ulimit -n; cat /etc/hosts"
                         ).stdout.splitlines()
        assert out[:2] == ["unlimited", "1000"], out
        # Docker's defaults, the added line, its own address, then the peer's
        assert out[8] == "10.1.2.3\tdb" and len(out[9].split("\t")[1]) == 12, out
        assert out[10].split("\t")[1].startswith(f"{name}-2"), out
        engine.cli("restart", "-t", "0", name)
        hosts = engine.cli("exec", name, "cat", "/etc/hosts").stdout.splitlines()
        assert hosts[6] == "10.1.2.3\tdb" and len(hosts) == 9, hosts
    finally:
        engine.cli("rm", "-f", name, f"{name}-2", check=False)
        engine.cli("network", "rm", net)
    text = engine.cli("run", "--rm", "--runtime", runtime, "--network", "host",
                      "--add-host", "db:10.1.2.3", image, "cat", "/etc/hosts").stdout
    # dockerd 20.10: its own file then, not the host's
    assert text.startswith("127.0.0.1\tlocalhost\n") and text.endswith("10.1.2.3\tdb\n")
    assert text.count("\n") == 7, text
