"""Running containers: isolation, exit codes, the docker verbs, and clean removal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.engine import CLI, Engine, cgroups_under, mounts_under

pytestmark = pytest.mark.root

RUNTIMES = ["muelle", "runc", "crun"]


def test_isolation_seen_from_inside(engine: Engine, image: str) -> None:
    script = (
        "echo pid=$$; hostname; "
        "echo procs=$(ls /proc | grep -c '^[0-9]'); "
        f"test -e /proc/{os.getpid()} && echo HOSTPID || echo nohostpid; "
        "echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ,); "
        "cat /proc/self/cgroup | head -3"
    )
    out = engine.cli("run", "--rm", "--hostname", "boxy", image, "sh", "-c", script).stdout
    lines = out.splitlines()
    assert "pid=1" in lines
    assert "boxy" in lines
    assert "nohostpid" in lines
    procs = int(next(x for x in lines if x.startswith("procs=")).split("=")[1])
    assert procs <= 5, out  # sh, its subshell, ls, grep: nothing of the host
    assert "ifaces=lo,eth0," in lines, out  # the default bridge's veth, none of the host's


def test_container_is_in_muelle_cgroup(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", image, "sleep", "60").stdout.strip()
    try:
        pid = json.loads(engine.cli("inspect", cid).stdout)[0]["State"]["Pid"]
        host_view = Path(f"/proc/{pid}/cgroup").read_text()
        assert f"/{engine.cgroup_parent}/{cid}" in host_view, host_view
        inside = engine.cli("run", "--rm", image, "cat", "/proc/self/cgroup").stdout
        assert inside.strip(), "no /proc/self/cgroup inside"
    finally:
        engine.cli("rm", "-f", cid)


def test_default_hostname_is_the_short_id(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", image, "hostname").stdout.strip()
    assert engine.cli("wait", cid).stdout.strip() == "0"
    assert engine.cli("logs", cid).stdout.strip() == cid[:12]
    engine.cli("rm", cid)


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_code_propagates(engine: Engine, image: str, code: int) -> None:
    proc = engine.cli("run", "--rm", image, "sh", "-c", f"exit {code}", check=False)
    assert proc.returncode == code, proc.stderr


def test_command_not_found(engine: Engine, image: str) -> None:
    proc = engine.cli("run", "--rm", image, "no-such-binary", check=False)
    assert proc.returncode == 127, proc.stderr
    assert "no-such-binary" in proc.stderr and "Traceback" not in proc.stderr


def test_env_workdir_user(engine: Engine, image: str) -> None:
    out = engine.cli("run", "--rm", "-e", "FOO=bar", "-w", "/tmp/work", "-u", "app", image,
                     "sh", "-c", "echo $FOO; pwd; id -u; id -g; echo $PATH").stdout.split()
    assert out[:4] == ["bar", "/tmp/work", "1000", "1000"]
    assert out[4].startswith("/usr/local/sbin")


def test_writes_stay_in_the_container(engine: Engine, image: str) -> None:
    engine.cli("run", "--name", "writer", image, "sh", "-c", "echo x > /etc/marker")
    try:
        proc = engine.cli("run", "--rm", image, "ls", "/etc/marker", check=False)
        assert proc.returncode != 0, "a write leaked into the image or another container"
    finally:
        engine.cli("rm", "writer")


def test_rm_leaves_nothing_behind(engine: Engine, image: str) -> None:
    before_mounts = mounts_under(engine.dir)
    engine.cli("run", "--rm", image, "true")
    assert engine.cli("ps", "-aq").stdout.strip() == ""
    assert mounts_under(engine.dir) == before_mounts
    for parent in cgroups_under(engine.cgroup_parent):
        assert [p for p in parent.iterdir() if p.is_dir()] == [], parent


def test_detached_lifecycle(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", "--name", "web", "-m", "64m", "--pids-limit", "50", image,
                     "sh", "-c", "echo started; trap 'echo bye; exit 3' TERM; "
                     "while true; do sleep 0.1; done").stdout.strip()
    try:
        assert len(cid) == 64
        ps = engine.cli("ps").stdout
        assert "web" in ps and cid[:12] in ps
        deadline = time.monotonic() + 10
        while "started" not in engine.cli("logs", "web").stdout:
            assert time.monotonic() < deadline, "no log output"
            time.sleep(0.1)
        detail = json.loads(engine.cli("inspect", "web").stdout)[0]
        assert detail["State"]["Running"] is True
        engine.cli("stop", "-t", "5", "web")
        assert engine.cli("wait", "web").stdout.strip() == "3"
        assert "bye" in engine.cli("logs", "web").stdout
        assert "web" not in engine.cli("ps").stdout
        assert "Exited (3)" in engine.cli("ps", "-a").stdout
    finally:
        engine.cli("rm", "-f", "web")
    assert engine.cli("inspect", "web", check=False).returncode != 0


def test_stop_kills_after_timeout(engine: Engine, image: str) -> None:
    engine.cli("run", "-d", "--name", "stubborn", image, "sh", "-c",
               "trap '' TERM; while true; do sleep 0.1; done")
    try:
        engine.cli("stop", "-t", "1", "stubborn")
        assert engine.cli("wait", "stubborn").stdout.strip() == "137"
    finally:
        engine.cli("rm", "-f", "stubborn")


def test_stop_of_many_signals_them_all_at_once_and_reports_in_order(engine: Engine,
                                                                      image: str) -> None:
    """As the docker CLI's parallelOperation: every container gets its SIGTERM while the
    first one's stop timeout still runs; results print in the order given, a missing
    name's error among them (sequential stops left the second untouched for 60 s)."""
    names = [f"many-{i}-{os.getpid()}" for i in range(3)]
    for name in names:
        engine.cli("run", "-d", "--name", name, image, "sh", "-c",
                   "trap 'echo got-term' TERM; while :; do sleep 0.05; done")
    try:
        stop = subprocess.Popen([CLI, "stop", "-t", "60", names[0], "nosuch", *names[1:]],
                                env=engine.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not all("got-term" in engine.cli("logs", n).stdout for n in names):
                assert time.monotonic() < deadline, "not every container got SIGTERM"
                time.sleep(0.05)
            engine.cli("kill", *names)
            out, err = stop.communicate(timeout=60)
        finally:
            stop.kill()
        assert stop.returncode == 1
        assert out.split() == names
        assert "nosuch" in err and "Traceback" not in err
    finally:
        engine.cli("rm", "-f", *names)


def test_ctrl_c_leaves_a_stop_of_many_at_once(engine: Engine, image: str) -> None:
    """As the docker CLI: an interrupted `stop` of several exits (130) without waiting
    for the stops under way (their 60 s timeouts)."""
    names = [f"intr-{i}-{os.getpid()}" for i in range(2)]
    for name in names:
        engine.cli("run", "-d", "--name", name, image, "sh", "-c",
                   "trap 'echo got-term' TERM; while :; do sleep 0.05; done")
    try:
        stop = subprocess.Popen([CLI, "stop", "-t", "60", *names], env=engine.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not all("got-term" in engine.cli("logs", n).stdout for n in names):
                assert time.monotonic() < deadline, "not every container got SIGTERM"
                time.sleep(0.05)
            stop.send_signal(signal.SIGINT)
            assert stop.wait(timeout=30) == 130
        finally:
            stop.kill()
    finally:
        engine.cli("rm", "-f", *names)


def test_rm_refuses_running_container_without_force(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", image, "sleep", "60").stdout.strip()
    try:
        proc = engine.cli("rm", cid, check=False)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert "running" in proc.stderr.lower()
    finally:
        engine.cli("rm", "-f", cid)


def test_name_clash(engine: Engine, image: str) -> None:
    engine.cli("create", "--name", "twice", image, "true")
    try:
        proc = engine.cli("create", "--name", "twice", image, "true", check=False)
        assert proc.returncode == 125 and "already in use" in proc.stderr
    finally:
        engine.cli("rm", "twice")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_same_output_under_each_runtime(engine: Engine, image: str, runtime: str) -> None:
    script = "echo pid=$$; hostname; id; cat /etc/hostname; ls /dev | sort | tr '\\n' ' '"
    proc = engine.cli("run", "--rm", "--runtime", runtime, "--hostname", "same", image,
                      "sh", "-c", script + "; exit 5", check=False)
    assert proc.returncode == 5, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "pid=1" and lines[1] == "same"
    assert lines[2].startswith("uid=0(root) gid=0(root)")
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm"):
        assert dev in lines[-1].split(), (runtime, lines[-1])


def test_network_modes(engine: Engine, image: str) -> None:
    none = engine.cli("run", "--rm", "--network", "none", image, "cat", "/proc/net/dev").stdout
    assert [line.split(":")[0].strip() for line in none.splitlines()[2:]] == ["lo"]
    before = {p.name for p in Path("/sys/class/net").iterdir()}
    seen = engine.cli("run", "--rm", "--network", "host", image, "ls", "/sys/class/net").stdout
    after = {p.name for p in Path("/sys/class/net").iterdir()}
    # Other engines on the host (tests running beside this one) add and remove veths.
    assert before & after <= set(seen.split()) <= before | after
    refused = engine.cli("run", "--rm", "--network", "nosuchnet", image, "true", check=False)
    assert refused.returncode == 125 and "network nosuchnet not found" in refused.stderr


def test_info_lists_the_runtimes_and_counts(engine: Engine, image: str) -> None:
    cid = engine.cli("create", image, "true").stdout.strip()
    try:
        out = engine.cli("info").stdout.splitlines()
        runtimes = next(line for line in out if line.startswith(" Runtimes:")).split()[1:]
        assert set(RUNTIMES) <= set(runtimes)
        assert " Default Runtime: muelle" in out
        containers = int(next(x for x in out if x.startswith(" Containers:")).split()[1])
        assert containers >= 1 and " Storage Driver: overlayfs" in out
    finally:
        engine.cli("rm", "-f", cid)
