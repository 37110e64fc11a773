"""Exec through the shim under every runtime: namespaces, cgroup, env/user/cwd, stdin,
exit codes (126/127 like docker), and nothing left behind."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from muelle.shim.v1 import shim_pb2 as pb

from tests.integration.shim.conftest import RUNTIMES, ShimProcess
from vocab.errors import FailedPrecondition, InvalidArgument

pytestmark = pytest.mark.root


def exec_in(shim: ShimProcess, cid: str, args: list[str], stdin: bytes | None = None,
            **spec: object) -> tuple[bytes, bytes, pb.ExecExit]:
    def inputs() -> Iterator[pb.ExecInput]:
        yield pb.ExecInput(start=pb.ExecSpec(id=cid, args=args, stdin=stdin is not None,
                                             **spec))  # type: ignore[arg-type]
        if stdin is not None:
            yield pb.ExecInput(stdin=stdin)
            yield pb.ExecInput(close_stdin=True)

    out, err, exit_ = b"", b"", None
    for msg in shim.stub.Exec(inputs(), timeout=60):
        if msg.WhichOneof("event") == "exit":
            exit_ = msg.exit
        elif msg.output.stream == "stdout":
            out += msg.output.data
        else:
            err += msg.output.data
    assert exit_ is not None
    return out, err, exit_


PROBE = "; ".join([
    "hostname", "echo $A $B", "tr '\\0' ' ' </proc/1/cmdline", "echo",
    "for n in net mnt pid ipc; do readlink /proc/self/ns/$n; done",
    "grep -E 'memory|pids' /proc/self/cgroup", "grep -E 'memory|pids' /proc/1/cgroup",
    "grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status", "echo oops >&2", "exit 3"])


def running(shim: ShimProcess, runtime: str, **spec: object) -> str:
    cid = shim.create(["sleep", "1000"], runtime=runtime, **spec)
    shim.stub.Start(pb.StartRequest(id=cid))
    return cid


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_joins_namespaces_and_cgroup(shim: ShimProcess, runtime: str) -> None:
    cid = running(shim, runtime, hostname="box", env=["A=container"], no_new_privileges=True)
    init = shim.stub.State(pb.StateRequest(id=cid)).pid
    out, err, ex = exec_in(shim, cid, ["sh", "-c", PROBE], env=["B=exec"])
    assert ex.exit_code == 3 and not ex.error
    assert err == b"oops\n"
    lines = out.decode().splitlines()
    assert lines[0] == "box"
    assert lines[1] == "container exec"
    assert lines[2].split() == ["sleep", "1000"]  # its pid namespace: the init is pid 1
    for name, line in zip(("net", "mnt", "pid", "ipc"), lines[3:7], strict=True):
        assert line == os.readlink(f"/proc/{init}/ns/{name}")
    # Its cgroup is the init's (seen through the container's cgroup namespace: "/").
    cg = [ln for ln in lines if "memory:" in ln or "pids:" in ln]
    assert len(cg) == 4 and cg[:2] == cg[2:], cg
    with open(f"/sys/fs/cgroup/pids/{shim.cgroup_parent}/{cid}/cgroup.procs") as f:
        assert str(init) in f.read().split()
    status = dict(ln.split(":\t") for ln in lines if ":\t" in ln)
    with open(f"/proc/{init}/status") as f:
        init_status = dict(ln.split(":\t") for ln in f.read().splitlines() if ":\t" in ln)
    assert status["CapEff"] == init_status["CapEff"] == "00000000a80425fb"
    # The container's seccomp mode and no_new_privs (the isolation work sets the profile).
    assert status["Seccomp"] == init_status["Seccomp"]
    assert status["NoNewPrivs"] == init_status["NoNewPrivs"] == "1"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_user_cwd_stdin_and_exit_codes(shim: ShimProcess, runtime: str) -> None:
    cid = running(shim, runtime)
    out, _, ex = exec_in(shim, cid, ["sh", "-c", "id -u; id -g; pwd; echo $HOME"],
                         user="app", cwd="/tmp")
    assert ex.exit_code == 0
    assert out.decode().split() == ["1000", "1000", "/tmp", "/home/app"]
    out, _, ex = exec_in(shim, cid, ["cat"], stdin=b"hi\n")
    assert (out, ex.exit_code) == (b"hi\n", 0)
    out, err, ex = exec_in(shim, cid, ["nosuchcmd"])
    assert ex.exit_code == 127 and "nosuchcmd" in ex.error, (out, err, ex)
    _, _, ex = exec_in(shim, cid, ["/etc/passwd"])
    assert ex.exit_code == 126 and ex.error
    _, _, ex = exec_in(shim, cid, ["sh", "-c", "kill -9 $$"])
    assert ex.exit_code == 137
    # The container is unharmed and the exec files are gone.
    assert shim.stub.State(pb.StateRequest(id=cid)).status == "running"
    assert not list((shim.dir / "root").rglob("exec/*"))


def test_exec_refused_unless_running(shim: ShimProcess) -> None:
    cid = shim.create(["sleep", "1000"])
    with pytest.raises(FailedPrecondition, match="not running"):
        exec_in(shim, cid, ["true"])
    shim.stub.Start(pb.StartRequest(id=cid))
    with pytest.raises(InvalidArgument, match="no command"):
        exec_in(shim, cid, [])
    with pytest.raises(InvalidArgument, match="unable to find user"):
        exec_in(shim, cid, ["true"], user="nosuch")
    with pytest.raises(InvalidArgument, match="not absolute"):
        exec_in(shim, cid, ["true"], cwd="tmp")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_with_a_terminal(shim: ShimProcess, runtime: str) -> None:
    cid = running(shim, runtime)
    out, err, ex = exec_in(shim, cid, ["sh", "-c", "tty; stty size; echo e >&2; exit 2"],
                           tty=True, console_size=pb.ConsoleSize(rows=30, cols=100))
    assert (out, err, ex.exit_code) == (b"/dev/pts/0\r\n30 100\r\ne\r\n", b"", 2), (out, ex)
    # Interactive: typed into the pty, resized between two commands.
    seen = threading.Event()

    def inputs() -> Iterator[pb.ExecInput]:
        yield pb.ExecInput(start=pb.ExecSpec(id=cid, args=["sh"], stdin=True, tty=True,
                                             console_size=pb.ConsoleSize(rows=30, cols=100)))
        yield pb.ExecInput(stdin=b"stty size\n")
        seen.wait(30)
        yield pb.ExecInput(resize=pb.ConsoleSize(rows=50, cols=120))
        yield pb.ExecInput(stdin=b"stty size; exit 3\n")

    out, code = b"", -1
    for msg in shim.stub.Exec(inputs(), timeout=60):
        if msg.WhichOneof("event") == "exit":
            code = msg.exit.exit_code
        else:
            out += msg.output.data
            if b"30 100\r\n" in out:
                seen.set()
    assert code == 3
    assert out.index(b"30 100\r\n") < out.index(b"50 120\r\n"), out
    _, _, ex = exec_in(shim, cid, ["nosuchcmd"], tty=True)
    assert ex.exit_code == 127 and "nosuchcmd" in ex.error, ex
    assert not list((shim.dir / "run" / "io").glob("x-*"))


def test_a_client_that_leaves_ends_its_exec(shim: ShimProcess) -> None:
    cid = running(shim, "runc")
    procs = Path(f"/sys/fs/cgroup/pids/{shim.cgroup_parent}/{cid}/cgroup.procs")
    call = shim.stub.Exec(iter([pb.ExecInput(start=pb.ExecSpec(id=cid, args=["sleep", "1001"]))]))
    deadline = time.monotonic() + 30
    while len(procs.read_text().split()) < 2:  # the exec'd sleep joined the cgroup
        assert time.monotonic() < deadline
        time.sleep(0.05)
    call.cancel()
    while len(procs.read_text().split()) > 1:
        assert time.monotonic() < deadline, "the exec'd process outlived its client"
        time.sleep(0.05)
    assert shim.stub.State(pb.StateRequest(id=cid)).status == "running"
