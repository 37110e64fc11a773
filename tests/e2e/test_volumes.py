"""Volumes through the CLI on a whole engine: named, anonymous (image VOLUME), bind, tmpfs,
--read-only, and a hostile image whose mount destination is a symlink to /etc."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.integration.shim.test_volumes import tree_hash
from tests.support.engine import Engine
from tests.support.images import Entry, Layer, build_layout, busybox_layer, push_layout
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.root

RUNTIMES = ["muelle", "runc"]


@pytest.fixture(scope="module")
def volume_image(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory,
                 engine: Engine) -> str:
    """busybox + VOLUME /data holding a seed file + /evil -> /etc (a hostile symlink)."""
    layout = tmp_path_factory.mktemp("layouts") / "vol"
    build_layout(layout, [busybox_layer(), Layer([
        Entry("data", "dir"), Entry("data/seed", data=b"from the image\n"),
        Entry("evil", "symlink", target="/etc"),
        Entry("evil2", "symlink", target="../../../../../etc")])],
        tag="1", config={"Volumes": {"/data": {}}})
    ref = f"{registry.host}/demo/volumes:1"
    push_layout(layout, ref, tag="1")
    engine.cli("pull", ref)
    return ref


def _name() -> str:
    return f"vol-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_named_volume_data_reaches_the_next_container(engine: Engine, image: str,
                                                      runtime: str) -> None:
    name = _name()
    engine.cli("run", "--rm", "--runtime", runtime, "-v", f"{name}:/data", image,
               "sh", "-c", "echo persisted > /data/f")
    assert name in engine.cli("volume", "ls", "-q").stdout.split()
    out = engine.cli("run", "--rm", "--runtime", runtime, "--mount",
                     f"type=volume,source={name},target=/mnt", image, "cat", "/mnt/f").stdout
    assert out == "persisted\n"
    # :ro and readonly refuse writes
    for flag in (["-v", f"{name}:/data:ro"],
                 ["--mount", f"type=volume,src={name},dst=/data,readonly"]):
        proc = engine.cli("run", "--rm", "--runtime", runtime, *flag, image,
                          "sh", "-c", "echo x > /data/f", check=False)
        assert proc.returncode != 0 and "Read-only file system" in proc.stderr
    info = json.loads(engine.cli("volume", "inspect", name).stdout)[0]
    assert info["Name"] == name and info["Driver"] == "local"
    assert Path(info["Mountpoint"], "f").read_text() == "persisted\n"
    engine.cli("volume", "rm", name)


def test_volume_rm_refused_while_in_use_and_prune(engine: Engine, image: str) -> None:
    name, spare = _name(), _name()
    assert engine.cli("volume", "create", spare).stdout == f"{spare}\n"
    cid = engine.cli("create", "-v", f"{name}:/data", image, "true").stdout.strip()
    proc = engine.cli("volume", "rm", name, check=False)
    assert proc.returncode == 1
    assert proc.stderr == f"Error response from daemon: remove {name}: volume is in use - [{cid}]\n"
    # prune -a keeps what a container uses, removes the unused named volume
    out = engine.cli("volume", "prune", "-a", "-f").stdout
    assert spare in out.splitlines() and name not in out.splitlines()
    engine.cli("rm", cid)  # a named volume survives its container, even with -v
    assert name in engine.cli("volume", "ls", "-q").stdout.split()
    engine.cli("volume", "rm", name)
    proc = engine.cli("volume", "inspect", name, check=False)
    assert proc.returncode == 1 and "no such volume" in proc.stderr


def test_bind_tmpfs_and_read_only_root(engine: Engine, image: str, tmp_path: Path) -> None:
    (tmp_path / "hello").write_text("host file\n")
    script = ("cat /in/hello; grep -E ' /(scratch|t2) ' /proc/mounts; "
              "touch /x 2>/dev/null && echo root-writable; "
              "for f in hosts hostname resolv.conf; do echo >> /etc/$f && echo $f-writable; "
              "done; echo ok > /scratch/f; cat /scratch/f")
    out = engine.cli("run", "--rm", "--read-only", "-v", f"{tmp_path}:/in:ro",
                     "--tmpfs", "/scratch:size=2m,mode=1770",
                     "--mount", "type=tmpfs,target=/t2,tmpfs-size=1m", image,
                     "sh", "-c", script).stdout
    lines = out.splitlines()
    assert lines[0] == "host file"
    scratch = next(x for x in lines if " /scratch " in x).split()
    assert scratch[2] == "tmpfs" and "size=2048k" in scratch[3] and "mode=1770" in scratch[3]
    assert "size=1024k" in next(x for x in lines if " /t2 " in x)
    assert "root-writable" not in lines and lines[-1] == "ok"
    assert not [x for x in lines if x.endswith("-writable")]  # /etc files too, as Docker
    missing = f"/nonexistent-{uuid.uuid4().hex[:8]}"
    proc = engine.cli("run", "--rm", "-v", f"{missing}:/in", image, "true", check=False)
    assert proc.returncode == 125 and len(proc.stderr.splitlines()) == 1
    assert "bind source path does not exist" in proc.stderr


@pytest.mark.parametrize("runtime", ["muelle", "runc", "crun"])
def test_read_only_covers_the_network_files(engine: Engine, image: str, runtime: str) -> None:
    """Docker mounts /etc/hosts, hostname and resolv.conf read-only with --read-only."""
    script = ("for f in hosts hostname resolv.conf; do echo >> /etc/$f && echo $f; done; "
              "grep -c ' /etc/[a-z.]* .* ro,' /proc/mounts")
    ro = engine.cli("run", "--rm", "--read-only", "--runtime", runtime, image, "sh", "-c",
                    script, check=False).stdout
    assert ro.split() == ["3"], ro
    rw = engine.cli("run", "--rm", "--runtime", runtime, image, "sh", "-c", script,
                    check=False).stdout
    assert rw.split() == ["hosts", "hostname", "resolv.conf", "0"], rw


def test_image_volume_is_anonymous_and_goes_with_rm_v(engine: Engine,
                                                      volume_image: str) -> None:
    def anonymous(cid: str) -> list[dict]:
        mounts = json.loads(engine.cli("inspect", cid).stdout)[0]["Mounts"]
        return [m for m in mounts if m["Type"] == "volume" and m["Destination"] == "/data"]

    cid = engine.cli("run", "-d", volume_image, "sh", "-c",
                     "cat /data/seed; echo more > /data/new").stdout.strip()
    assert engine.cli("wait", cid).stdout.strip() == "0"
    assert engine.cli("logs", cid).stdout == "from the image\n"  # copied into the volume
    [mount] = anonymous(cid)
    assert len(mount["Name"]) == 64 and mount["RW"]
    assert Path(mount["Source"], "new").read_text() == "more\n"
    engine.cli("rm", "-v", cid)
    assert mount["Name"] not in engine.cli("volume", "ls", "-q").stdout.split()
    # without -v the anonymous volume stays until a prune
    cid = engine.cli("create", volume_image, "true").stdout.strip()
    [mount] = anonymous(cid)
    engine.cli("rm", cid)
    assert mount["Name"] in engine.cli("volume", "ls", "-q").stdout.split()
    assert mount["Name"] in engine.cli("volume", "prune", "-f").stdout.splitlines()
    assert mount["Name"] not in engine.cli("volume", "ls", "-q").stdout.split()
    # --rm takes the anonymous volume with the container, like Docker
    before = set(engine.cli("volume", "ls", "-q").stdout.split())
    engine.cli("run", "--rm", volume_image, "true")
    assert set(engine.cli("volume", "ls", "-q").stdout.split()) == before


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_symlink_to_etc_leaves_the_host_etc_alone(engine: Engine, volume_image: str,
                                                  tmp_path: Path, runtime: str) -> None:
    payload = tmp_path / "payload"
    payload.write_text("payload\n")
    marker = f"muelle-pwn-{uuid.uuid4().hex[:8]}"
    before = tree_hash("/etc")
    out = engine.cli(
        "run", "--rm", "--runtime", runtime, "-v", f"{payload}:/evil/{marker}:ro",
        "-v", f"/evil2/dir-{marker}", "--mount", f"type=tmpfs,target=/evil/tmp-{marker}",
        volume_image, "sh", "-c",
        f"cat /etc/{marker}; echo x > /etc/dir-{marker}/f && ls /etc/tmp-{marker}/ && "
        "echo inside").stdout
    assert out == "payload\ninside\n"
    assert tree_hash("/etc") == before
    for leftover in (marker, f"dir-{marker}", f"tmp-{marker}"):
        assert not os.path.lexists(f"/etc/{leftover}")


def test_volumes_from_through_the_cli(engine: Engine, image: str) -> None:
    engine.cli("run", "--name", "vf-source", "-v", "vf-named:/named", "-v", "/anon", image,
               "sh", "-c", "echo n > /named/f; echo a > /anon/f")
    try:
        out = engine.cli("run", "--rm", "--volumes-from", "vf-source:ro", image, "sh", "-c",
                         "cat /named/f /anon/f; touch /named/w || echo read-only").stdout
        assert out == "n\na\nread-only\n"
        bad = engine.cli("run", "--rm", "--volumes-from", "vf-nosuch", image, "true",
                         check=False)
        assert bad.returncode == 125 and "No such container: vf-nosuch" in bad.stderr
    finally:
        engine.cli("rm", "-f", "-v", "vf-source", check=False)
        engine.cli("volume", "rm", "vf-named", check=False)
