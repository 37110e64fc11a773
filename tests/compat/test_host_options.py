"""docker run --add-host, --ulimit, --shm-size, --device, --oom-score-adj,
--memory-reservation, --memory-swappiness, --oom-kill-disable and --device-cgroup-rule
against muelle's Docker API and a private dockerd: the same commands, the same output and
exit codes."""

from __future__ import annotations

import resource

from services.shim import spec
from tests.compat.conftest import DockerCli

MEMCG = "/sys/fs/cgroup/memory"  # cgroup v1 (this host's hybrid layout)
HOSTS = ("cat /etc/hosts; echo; ip route | awk '/^default/ {print $3}'; hostname")


def _hosts(out: str) -> tuple[list[str], str]:
    """/etc/hosts with the addresses that differ between engines checked and named: the
    host-gateway line is the container's default gateway, the last line its own address
    and hostname."""
    text, _, tail = out.partition("\n\n")
    gateway, hostname = tail.split()
    lines = text.splitlines()
    own_ip, own_name = lines[-1].split("\t")
    assert own_name == hostname and own_ip.count(".") == 3, out
    gw_line = next(i for i, line in enumerate(lines) if line.endswith("\tgw"))
    assert lines[gw_line] == f"{gateway}\tgw", out
    lines[gw_line] = "GATEWAY\tgw"
    return lines[:-1], "OWN"


def test_host_options_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                    pulled: str) -> None:
    runs = [
        ["--add-host", "foo:1.2.3.4", "--add-host", "bar:::1", "--add-host",
         "gw:host-gateway", pulled, "sh", "-c", HOSTS],
        ["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=100", pulled, "sh", "-c",
         "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu"],
        ["--shm-size", "128m", pulled, "df", "-k", "/dev/shm"],
        ["--shm-size", "1k", pulled, "df", "-k", "/dev/shm"],
        [pulled, "df", "-k", "/dev/shm"],
        ["--device", "/dev/null:/dev/mynull", pulled, "sh", "-c",
         "echo hi > /dev/mynull; echo $?; stat -c '%F %t:%T %a %U' /dev/mynull"],
        ["--device", "/dev/zero:/dev/z:rw", pulled, "sh", "-c",
         "head -c 3 /dev/z | wc -c; stat -c '%F %t:%T' /dev/z"],
        ["--oom-score-adj", "500", pulled, "cat", "/proc/self/oom_score_adj"],
        # The device cgroup holds the permissions: opening for reading needs r. (A device
        # Docker's and runc's default rules leave out, harmless to open.)
        ["--device", "/dev/loop-control:/dev/lc:w", pulled, "sh", "-c",
         "(: < /dev/lc) 2>/dev/null; echo $?"],
        ["--device", "/dev/loop-control:/dev/lc:r", pulled, "sh", "-c",
         "(: < /dev/lc) 2>/dev/null; echo $?"],
        ["-m", "64m", "--memory-reservation", "32m", "--memory-swappiness", "7",
         "--oom-kill-disable", pulled, "sh", "-c", f"cd {MEMCG}; cat "
         "memory.soft_limit_in_bytes memory.swappiness; grep oom_kill_disable "
         "memory.oom_control"],
        [pulled, "sh", "-c", f"cd {MEMCG}; grep oom_kill_disable memory.oom_control"],
        ["--device-cgroup-rule", "c 42:* r", "--device-cgroup-rule", "b 7:3 rw", pulled,
         "grep", "-c", "-e", "^c 42:\\* r$", "-e", "^b 7:3 rw$",
         "/sys/fs/cgroup/devices/devices.list"],
        [pulled, "sh", "-c", "grep -c '^c 42:' /sys/fs/cgroup/devices/devices.list; :"],
    ]
    ours = []
    for args in runs:
        seen = [cli("run", "--rm", *args).stdout for cli in (muelle_cli, dockerd_cli)]
        if "--add-host" in args:
            assert _hosts(seen[0]) == _hosts(seen[1]), seen
        else:
            assert seen[0] == seen[1], (args, seen)
        ours.append(seen[0])
    assert ours[1] == "1024\n2048\n100\n100\n"
    assert ours[5].startswith("0\ncharacter special file 1:3 666 root")
    assert (ours[8], ours[9]) == ("1\n", "0\n")
    assert ours[10:12] == ["33554432\n7\noom_kill_disable 1\n", "oom_kill_disable 0\n"]
    assert ours[12:14] == ["2\n", "0\n"]


def test_host_options_in_inspect_as_on_dockerd(muelle_cli: DockerCli,
                                               dockerd_cli: DockerCli, pulled: str) -> None:
    fields = ("ExtraHosts", "Ulimits", "ShmSize", "Devices", "OomScoreAdj",
              "MemoryReservation", "MemorySwappiness", "OomKillDisable", "DeviceCgroupRules")
    template = " ".join(f"{{{{json .HostConfig.{f}}}}}" for f in fields)
    seen = []
    for cli in (muelle_cli, dockerd_cli):
        for flags in (["--add-host", "foo:1.2.3.4", "--ulimit", "nofile=1024:2048",
                       "--shm-size", "128m", "--device", "/dev/null:/dev/mynull",
                       "--oom-score-adj", "300", "--memory-reservation", "20m",
                       "--memory-swappiness", "0", "--oom-kill-disable",
                       "--device-cgroup-rule", "c 1:9 r"], []):
            cid = cli("create", *flags, pulled, "true").stdout.strip()
            try:
                seen.append(cli("inspect", "-f", template, cid).stdout)
            finally:
                cli("rm", cid)
    assert seen[0] == seen[2] and seen[1] == seen[3], seen
    assert seen[1] == "null null 67108864 [] 0 0 null false null\n"


def test_bad_host_options_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                        pulled: str) -> None:
    """The exit code dockerd gives; the message says what is wrong (dockerd's own, or,
    where dockerd passes on runc's "operation not permitted", which flag and why)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # (flags, exit code, muelle's message, whether dockerd's says the same)
    cases = [
        (["--device", "/dev/nonexistent"], 127,
         'error gathering device information while adding custom device '
         '"/dev/nonexistent": no such file or directory', True),
        (["--device", "/etc/passwd"], 125,
         'error gathering device information while adding custom device "/etc/passwd": '
         "not a device node", True),
        (["--oom-score-adj", "5000"], 125,
         "Invalid value 5000, range for oom score adj is [-1000, 1000]", True),
        (["--ulimit", "nofile=20:10"], 125,
         "ulimit soft limit must be less than or equal to hard limit: 20 > 10", True),
        (["--memory-reservation", "1m"], 125, "Minimum memory reservation allowed is 6MB",
         True),
        (["-m", "16m", "--memory-reservation", "32m"], 125,
         "Minimum memory limit can not be less than memory reservation limit", True),
        (["--memory-swappiness", "101"], 125,  # the docker CLI's own check
         "Valid memory swappiness range is 0-100", True),
    ]
    if not spec._has_cap(spec.CAP_SYS_RESOURCE):
        # runc cannot go past the hard limit or lower oom_score_adj either; dockerd passes
        # on its "operation not permitted" or "can't get final child's PID"
        cases.append((["--oom-score-adj", "-500"], 125,
                      "--oom-score-adj -500: below this host's", False))
        if hard != resource.RLIM_INFINITY:
            cases.append((["--ulimit", f"nofile={hard + 1}"], 125, "--ulimit nofile: hard "
                          f"limit {hard + 1} is above this host's {hard}", False))
    for flags, code, message, same in cases:
        theirs = dockerd_cli("run", "--rm", *flags, pulled, "true", check=False)
        ours = muelle_cli("run", "--rm", *flags, pulled, "true", check=False)
        assert ours.returncode == theirs.returncode == code, (flags, ours, theirs)
        assert message in ours.stderr, (flags, ours.stderr)
        assert "Traceback" not in ours.stderr
        if same:
            assert message in theirs.stderr, (flags, theirs.stderr)
    assert muelle_cli("ps", "-aq").stdout.strip() == ""
