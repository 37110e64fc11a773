"""`run --uidmap`: a container in a user namespace, its image layers idmapped, not chowned,
under muelle-runtime, runc and crun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root

RUNTIMES = ["muelle", "runc", "crun"]
SHIFT = 100000
DOCKER_CAPS = "00000000a80425fb"

PROBE = r"""
echo "uidmap=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"
echo "gidmap=$(cat /proc/self/gid_map | tr -s ' ' | sed 's/^ //')"
echo "id=$(id -u):$(id -g)"
echo "busybox=$(stat -c %u:%g /bin/busybox)"
touch /made && echo "made=$(stat -c %u:%g /made)"
mknod /null2 c 1 3 2>/dev/null && echo mknod=yes || echo mknod=no
grep -E '^CapEff:' /proc/self/status | tr -d '\t '
echo "hostname=$(hostname)"
echo "procsys=$( (echo x > /proc/sys/kernel/hostname) 2>/dev/null && echo rw || echo ro)"
echo "net=$(ls /sys/class/net | tr '\n' ,)"
gw=$(ip route | awk '/^default/ {print $3}')
ping -c 1 -W 5 "$gw" >/dev/null 2>&1 && echo ping=ok || echo ping=failed
"""


def _fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=") if "=" in line else line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _pinned_namespaces(engine: Engine) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(engine.dir) in line
                and line.split()[4].endswith(("/userns", "/netns"))]


def _idmap_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if ".idmap/" in line or "idmapped" in line]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_with_uidmap(engine: Engine, image: str, runtime: str) -> None:
    before = _idmap_mounts()
    out = engine.cli("run", "--rm", "--runtime", runtime, "--hostname", "inside",
                     "--uidmap", f"0:{SHIFT}:65536", image, "sh", "-c", PROBE).stdout
    got = _fields(out)
    assert got["uidmap"] == got["gidmap"] == f"0 {SHIFT} 65536", out
    assert got["id"] == "0:0"
    # The image's files are root's inside, through the idmapped layers, and so is a new one.
    assert got["busybox"] == "0:0" and got["made"] == "0:0", out
    assert got["CapEff"] == DOCKER_CAPS
    assert got["mknod"] == "no"  # CAP_MKNOD in its namespace, no device nodes
    assert got["hostname"] == "inside" and got["procsys"] == "ro"
    # Its network namespace is its user namespace's: its own sysfs, raw sockets (ping).
    assert got["net"] == "eth0,lo," and got["ping"] == "ok", out
    assert _idmap_mounts() == before  # the staged layer views are detached at once
    assert _pinned_namespaces(engine) == []


def test_processes_run_as_the_mapped_host_ids(engine: Engine, image: str) -> None:
    cid = engine.cli("run", "-d", "--uidmap", f"0:{SHIFT}:65536", "--gidmap",
                     f"0:{SHIFT + 65536}:65536", image, "sleep", "60").stdout.strip()
    try:
        pid = json.loads(engine.cli("inspect", cid).stdout)[0]["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()
        gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()
        assert uids[1:] == [str(SHIFT)] * 4
        assert gids[1:] == [str(SHIFT + 65536)] * 4
        # exec joins the user namespace; so does a non-root user of the image
        exec_out = engine.cli("exec", cid, "sh", "-c", "cat /proc/self/uid_map; id -u").stdout
        assert exec_out.split() == ["0", str(SHIFT), "65536", "0"]
        assert engine.cli("exec", "-u", "65534", cid, "id", "-u").stdout.strip() == "65534"
        # stop and start again: the rootfs stays (or is mounted again) idmapped
        engine.cli("restart", "-t", "1", cid)
        assert engine.cli("exec", cid, "stat", "-c", "%u", "/bin/busybox").stdout.strip() == "0"
        inspect = json.loads(engine.cli("inspect", cid).stdout)[0]["HostConfig"]
        assert inspect["UIDMap"] == [f"0:{SHIFT}:65536"]
        assert inspect["GIDMap"] == [f"0:{SHIFT + 65536}:65536"]
        # its layer holds shifted IDs: commit and export refuse instead of mixing them
        for verb in (["commit", cid], ["export", "-o", "/dev/null", cid]):
            bad = engine.cli(*verb, check=False)
            assert bad.returncode != 0 and "user namespace" in bad.stderr
            assert "Traceback" not in bad.stderr
    finally:
        engine.cli("rm", "-f", cid)
    assert _pinned_namespaces(engine) == []


@pytest.mark.parametrize("flags, message", [
    (["--uidmap", "0:100000"], "want CONTAINER:HOST:SIZE"),
    (["--uidmap", "0:100000:0"], "out of range"),
    (["--uidmap", "0:100000:10", "--uidmap", "5:200000:10"], "overlap"),
    (["--gidmap", "0:100000:10"], "--gidmap needs --uidmap"),
    (["--userns", "host", "--uidmap", "0:100000:10"], "conflicts"),
    (["--userns", "private"], "only \"host\""),
    (["--privileged", "--uidmap", "0:100000:65536"], "privileged"),
    (["--uidmap", "0:100000:10", "-u", "1000"], "user 1000 is not mapped"),
])
def test_bad_user_namespace_options(engine: Engine, image: str, flags: list[str],
                                    message: str) -> None:
    before = engine.cli("ps", "-aq").stdout
    proc = engine.cli("run", "--rm", *flags, image, "true", check=False)
    assert proc.returncode == 125, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert engine.cli("ps", "-aq").stdout == before


def test_userns_host_is_the_default(engine: Engine, image: str) -> None:
    out = engine.cli("run", "--rm", "--userns", "host", image, "cat",
                     "/proc/self/uid_map").stdout.split()
    assert out == ["0", "0", "4294967295"]


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_exec_under_other_runtimes(engine: Engine, image: str, runtime: str) -> None:
    cid = engine.cli("run", "-d", "--runtime", runtime, "--uidmap", f"0:{SHIFT}:65536",
                     image, "sleep", "60").stdout.strip()
    try:
        out = engine.cli("exec", cid, "sh", "-c", "cat /proc/self/uid_map; id -u").stdout
        assert out.split() == ["0", str(SHIFT), "65536", "0"]
    finally:
        engine.cli("rm", "-f", cid)


@pytest.mark.parametrize("runtime", ["muelle", "runc"])
def test_userns_with_the_host_network(engine: Engine, image: str, runtime: str) -> None:
    """The host's network namespace is not the container's user namespace's: /sys is the
    host's, bound read-only (a new sysfs would be refused)."""
    out = engine.cli("run", "--rm", "--runtime", runtime, "--network", "host", "--uidmap",
                     f"0:{SHIFT}:65536", image, "sh", "-c",
                     "ls /sys/class/net; touch /sys/x 2>/dev/null || echo sys=ro").stdout
    assert "lo" in out.split() and "sys=ro" in out


def test_engine_wide_remap(busybox_ref: str) -> None:
    """gateway.userns_remap (dockerd's --userns-remap): every container gets the maps
    unless it says --userns=host; --privileged needs that, as with Docker."""
    with Engine(extra_config=f'[gateway]\nuserns_remap = ["0:{SHIFT}:65536"]\n') as remapped:
        remapped.cli("pull", busybox_ref)
        got = remapped.cli("run", "--rm", busybox_ref, "cat", "/proc/self/uid_map").stdout
        assert got.split() == ["0", str(SHIFT), "65536"]
        host = remapped.cli("run", "--rm", "--userns=host", busybox_ref, "cat",
                            "/proc/self/uid_map").stdout
        assert host.split() == ["0", "0", "4294967295"]
        refused = remapped.cli("run", "--rm", "--privileged", busybox_ref, "true",
                               check=False)
        assert refused.returncode == 125 and "--userns=host" in refused.stderr
        remapped.cli("run", "--rm", "--privileged", "--userns=host", busybox_ref, "true")
        assert _pinned_namespaces(remapped) == []


def test_bad_engine_wide_remap_stops_the_gateway() -> None:
    engine = Engine(extra_config='[gateway]\nuserns_remap = ["0:100000"]\n')
    try:
        with pytest.raises(Exception) as failure:
            engine.start()
        assert "gateway.userns_remap" in str(failure.value) + engine.logs()
    finally:
        engine.close()
