"""Pure helpers of the runtime: no root, no kernel state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services.runtime import capabilities, linux, process, rootfs, seccomp, spec
from services.runtime.cgroups import normalise
from services.runtime.cgroups.v1 import device_rule
from services.runtime.cgroups.v2 import shares_to_weight
from services.runtime.kill import parse_signal
from services.runtime.run import exit_code
from services.runtime.state import render_list
from tests.integration.runtime.bundle import DOCKER_CAPEFF, DOCKER_CAPS, config
from vocab.errors import FailedPrecondition, InvalidArgument

REPO = Path(__file__).resolve().parents[3]


def test_docker_caps_mask() -> None:
    assert capabilities.mask(DOCKER_CAPS) == DOCKER_CAPEFF
    assert capabilities.number("chown") == 0
    assert capabilities.number("CAP_CHECKPOINT_RESTORE") == 40
    with pytest.raises(InvalidArgument):
        capabilities.number("CAP_NOPE")


@pytest.mark.parametrize("text,num", [("KILL", 9), ("SIGKILL", 9), ("9", 9), ("term", 15),
                                      ("SIGUSR1", int(signal.SIGUSR1))])
def test_parse_signal(text: str, num: int) -> None:
    assert parse_signal(text) == num


@pytest.mark.parametrize("bad", ["FOO", "0", "999", ""])
def test_parse_signal_rejects(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_signal(bad)


def test_parse_mount_options() -> None:
    flags, props, data = rootfs.parse_options(
        ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "rprivate", "ro", "rw"])
    assert flags == linux.MS_NOSUID | linux.MS_NOEXEC
    assert props == [linux.MS_PRIVATE | linux.MS_REC]
    assert data == "newinstance,ptmxmode=0666"


def test_device_rule() -> None:
    assert device_rule({"allow": False, "access": "rwm"}) == "a"
    assert device_rule({"type": "c", "major": 1, "minor": 3, "access": "rwm"}) == "c 1:3 rwm"
    assert device_rule({"type": "c", "major": 136, "access": "rw"}) == "c 136:* rw"


def test_shares_to_weight() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000


def test_cgroup_path() -> None:
    assert normalise("", "abc") == "/abc"
    assert normalise("muelle/abc", "abc") == "/muelle/abc"
    with pytest.raises(InvalidArgument):
        normalise("system.slice:muelle:abc", "abc")


def test_lookup(tmp_path: Path) -> None:
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert process.lookup("tool", {"PATH": f"/nonexistent:{tmp_path}"}) == str(exe)
    assert process.lookup(str(exe), {}) == str(exe)
    with pytest.raises(FailedPrecondition, match=r'exec: "nope": executable file not found'):
        process.lookup("nope", {"PATH": str(tmp_path)})


def test_env_and_home(tmp_path: Path) -> None:
    env = process.env_dict(["A=1", "B=x=y", "=bad", "C="])
    assert env == {"A": "1", "B": "x=y", "C": ""}


def test_rlimit_names() -> None:
    assert process.rlimit_number("RLIMIT_NOFILE") >= 0
    with pytest.raises(InvalidArgument):
        process.rlimit_number("RLIMIT_BOGUS")


def test_seccomp_actions() -> None:
    assert seccomp.action("SCMP_ACT_ALLOW", None, 1) == 0x7FFF0000
    assert seccomp.action("SCMP_ACT_ERRNO", None, 1) == 0x00050001
    assert seccomp.action("SCMP_ACT_ERRNO", 38, 1) == 0x00050026
    assert seccomp.arch_name("SCMP_ARCH_X86_64") == b"x86_64"
    with pytest.raises(InvalidArgument):
        seccomp.validate({"defaultAction": "SCMP_ACT_NOPE"})
    with pytest.raises(InvalidArgument):
        seccomp.validate({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "op": "EQ"}]}]})


def test_exit_code() -> None:
    assert exit_code(7 << 8) == 7
    assert exit_code(signal.SIGKILL) == 128 + 9


@pytest.mark.parametrize("change,match", [
    (lambda c: c.pop("process"), "process"),
    (lambda c: c["process"].__setitem__("args", []), "args"),
    (lambda c: c["process"].__setitem__("cwd", "relative"), "cwd"),
    (lambda c: c["process"]["capabilities"]["effective"].append("CAP_X"), "CAP_X"),
    (lambda c: c["linux"]["namespaces"].append({"type": "weird"}), "weird"),
    (lambda c: c["mounts"].append({"destination": "rel"}), "absolute"),
    (lambda c: c["linux"].__setitem__("cgroupsPath", "/a/../b"), r"\.\."),
])
def test_spec_validation(change, match: str) -> None:  # type: ignore[no-untyped-def]
    cfg = config(["true"], "x")
    change(cfg)
    with pytest.raises(InvalidArgument, match=match):
        spec.validate(cfg)


def test_spec_load_errors(tmp_path: Path) -> None:
    from vocab.errors import NotFound

    with pytest.raises(NotFound):
        spec.load(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InvalidArgument):
        spec.load(str(tmp_path))


def test_render_list() -> None:
    text = render_list([{"id": "a", "pid": 1, "status": "running", "bundle": "/b"}])
    assert text.splitlines()[1].split() == ["a", "1", "running", "/b"]
    assert os.linesep == "\n"


def test_the_intermediate_keeps_only_the_fds_it_is_given() -> None:
    """create's intermediate closes every fd above 2 but its own (sync, ack, fifo...), so a
    container never holds a pipe of the program that ran create (the shim's monitor)."""
    # In a fresh interpreter: a fork of pytest's would carry grpcio's post-fork threads,
    # whose epoll fd the close takes away (they then fail on it, as the monitor's never do:
    # it has no grpcio).
    script = """
import json, os, sys
from services.runtime.create import _close_all_but
stray = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]
keep = os.open(os.devnull, os.O_RDONLY)
out = os.dup(1)
_close_all_but(keep, out, -1)
def is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
os.write(out, json.dumps([[fd for fd in [0, 1, 2, keep, *stray] if is_open(fd)], keep]).encode())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, check=True)
    still, keep = json.loads(done.stdout)
    assert still == [0, 1, 2, keep]
