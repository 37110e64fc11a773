"""The native monitor tail (services/shim/native/muelle-monitor.c, built by make setup):
the log it writes is the one Python's LogWriter writes for the same output, byte for byte
but the time; it records the exit status, runs the delete under the delete lock, rotates.

Each test starts a stand-in monitor that becomes a subreaper, starts an "init" writing known
bytes to its stdout/stderr pipes, and execs the native tail with them, as monitor.py does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.shim import stdin
from services.shim.logs import MAX_ENTRY, LogWriter
from services.shim.monitor import PR_SET_CHILD_SUBREAPER

NATIVE = Path(sys.executable).parent / "muelle-monitor"
TIME = re.compile(rb'"time": "[0-9T:.Z-]+"')


@pytest.fixture(autouse=True)
def _built() -> None:
    assert NATIVE.exists(), f"{NATIVE} is missing: run make setup (it builds it with gcc)"


# The stand-in monitor runs in a fresh interpreter, not an os.fork of this one: gRPC's
# fork handlers in the test process (other tests' channels) crashed such a child now and
# then when the whole unit suite ran in one process.
STAND_IN = """
import ctypes, fcntl, json, os, struct, sys, termios, time
p = json.load(open(sys.argv[1]))
try:
    ctypes.CDLL(None).prctl(SUBREAPER, 1, 0, 0, 0)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(out_r)
        os.close(err_r)
        for chunk in p["out"]:
            os.write(out_w, bytes.fromhex(chunk))
            while p["one_by_one"] and struct.unpack(
                    "i", fcntl.ioctl(out_w, termios.FIONREAD, b"\\0\\0\\0\\0"))[0]:
                time.sleep(0.001)  # until the tail has read this chunk
        for chunk in p["err"]:
            os.write(err_w, bytes.fromhex(chunk))
        os._exit(p["code"])
    os.close(out_w)
    os.close(err_w)
    os.set_inheritable(out_r, True)
    os.set_inheritable(err_r, True)
    os.execv(p["native"], [p["native"], "--dir", p["dir"], "--init-pid", str(init),
                           "--stdout-fd", str(out_r), "--stderr-fd", str(err_r),
                           "--cgroup", "/muelle-test-none", *p["extra"], "--", *p["delete"]])
finally:
    os._exit(99)
""".replace("SUBREAPER", str(PR_SET_CHILD_SUBREAPER))


def run_tail(cdir: Path, out: list[bytes], err: list[bytes], code: int = 0,
             extra: tuple[str, ...] = (), delete: tuple[str, ...] = ("true",),
             one_by_one: bool = False) -> dict:
    """Start a stand-in monitor that execs the tail; wait for it; return status.json."""
    cdir.mkdir(exist_ok=True)
    params = cdir.parent / f".{cdir.name}.stand-in.json"
    params.write_text(json.dumps({
        "out": [c.hex() for c in out], "err": [c.hex() for c in err], "code": code,
        "extra": list(extra), "delete": list(delete), "one_by_one": one_by_one,
        "native": str(NATIVE), "dir": str(cdir)}))
    proc = subprocess.run([sys.executable, "-S", "-c", STAND_IN, str(params)], timeout=120,
                          check=False)
    assert proc.returncode == 0
    # The delete runs in a child that holds delete.lock: wait for it to let go.
    with open(cdir / "delete.lock", "rb+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
    return json.loads((cdir / "status.json").read_text())


def python_log(tmp: Path, out: list[bytes], err: list[bytes], max_size: int = 0,
               files: int = 1) -> Path:
    path = tmp / "python.log"
    writer = LogWriter(str(path), max_size, files)
    for chunk in out:
        writer.write("stdout", chunk)
    for chunk in err:
        writer.write("stderr", chunk)
    writer.close()
    return path


def lines_by_stream(path: Path) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    for line in path.read_bytes().splitlines(keepends=True):
        found[json.loads(line)["stream"]].append(TIME.sub(b'"time": ""', line))
    return found


def tricky_bytes(rng: random.Random) -> bytes:
    pieces = [b"plain line\n", "héllo wörld ✓ 𝄞\n".encode(), b"\xff\xfe bad utf-8 \xc3\n",
              b"\xed\xa0\x80 encoded surrogate\n", b"\xf0\x9f\x98 truncated\n",
              b'quotes " and \\ backslash\t tab \r\x00\x01\x1f\x7f\n', b"no newline yet ",
              b"x" * (MAX_ENTRY + 100) + b"\n", b"\xe2\x82", b"\xac\n"]
    return b"".join(rng.choice(pieces) for _ in range(60))


def test_log_is_what_python_writes(tmp_path: Path) -> None:
    rng = random.Random(21)
    out = [tricky_bytes(rng) for _ in range(5)] + [b"ends without a newline"]
    err = [tricky_bytes(rng), b"\xe2"]  # a sequence cut off at EOF
    status = run_tail(tmp_path / "c", out, err, code=7)
    assert status["exit_code"] == 7 and status["pid"] > 0
    assert status["oom_killed"] is False and status["error"] == ""
    native = lines_by_stream(tmp_path / "c" / "container.log")
    assert native == lines_by_stream(python_log(tmp_path, out, err))
    assert len(native["stdout"]) > 100


def test_signal_exit_and_delete_under_the_lock(tmp_path: Path) -> None:
    marker = tmp_path / "deleted"
    cdir = tmp_path / "c"
    status = run_tail(cdir, [b"bye\n"], [], code=0,
                      delete=("sh", "-c", f"sleep 0.2; echo $PPID > {marker}"))
    assert status["exit_code"] == 0
    assert marker.exists(), "the delete ran before the lock was free"
    assert "container exited, status 0" in (cdir / "monitor.log").read_text()


def test_failed_delete_is_noted(tmp_path: Path) -> None:
    cdir = tmp_path / "c"
    run_tail(cdir, [], [], delete=("sh", "-c", "echo no such container >&2; exit 1"))
    deadline = time.monotonic() + 10
    while "delete failed" not in (cdir / "monitor.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "delete failed: no such container" in (cdir / "monitor.log").read_text()


def test_rotation_as_python(tmp_path: Path) -> None:
    out = [f"line {i} {'y' * (i % 50)}\n".encode() for i in range(400)]
    cdir = tmp_path / "c"
    run_tail(cdir, out, [], extra=("--log-max-size", "4000", "--log-max-files", "3"))
    python_log(tmp_path, out, [], 4000, 3)
    for suffix in ("", ".1", ".2"):
        assert lines_by_stream(cdir / f"container.log{suffix}") == \
            lines_by_stream(tmp_path / f"python.log{suffix}"), suffix
    assert not (cdir / "container.log.3").exists()


def test_partial_lines_handed_over(tmp_path: Path) -> None:
    """What the Python monitor held of an unfinished line goes on in the same entry."""
    cdir = tmp_path / "c"
    run_tail(cdir, [b"world\n"], [b"rr\n"],
             extra=("--partial-stdout", b"hello ".hex(), "--partial-stderr", b"e".hex()))
    logged = [json.loads(line) for line in (cdir / "container.log").read_text().splitlines()]
    assert sorted((e["stream"], e["log"]) for e in logged) == \
        [("stderr", "err\n"), ("stdout", "hello world\n")]


@pytest.mark.root
@pytest.mark.parametrize("free_pages", [0, 2])
def test_full_disk_keeps_whole_lines_and_the_status(tmp_path: Path, free_pages: int) -> None:
    """On a full filesystem the tail drops whole log entries (the file holds whole lines
    only) and still records the exit status: in the blocks of status.spare when not one
    block is free."""
    cdir = tmp_path / "c"
    cdir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(cdir)], check=True)
    try:
        (cdir / "status.spare").write_bytes(b" " * 1024)  # as monitor.run sets it aside
        fd = os.open(cdir / "filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        os.truncate(cdir / "filler", os.path.getsize(cdir / "filler") - 4096 * free_pages)
        out = [f"line {i:04d} {'z' * 90}\n".encode() for i in range(120)]
        status = run_tail(cdir, out, [], code=3, one_by_one=True)
        assert status["exit_code"] == 3
        text = (cdir / "container.log").read_bytes()
        logged = [json.loads(line)["log"] for line in text.splitlines()]
        assert logged == [o.decode() for o in out[: len(logged)]]  # a prefix, none torn
        if free_pages:
            assert text.endswith(b"\n") and 0 < len(logged) < len(out)
        else:
            assert not (cdir / "status.spare").exists()  # renamed into status.json
            assert not logged
    finally:
        subprocess.run(["umount", str(cdir)], check=True)


# A long-running init for the tail: it forks a child that forks an orphan and exits, so
# the orphan (blocked on a FIFO until the test opens it) becomes the tail's child, as a
# container's double-forked process becomes its monitor's with --pid host.
IDLE_STAND_IN = """
import ctypes, os, sys
tmp, native = sys.argv[1], sys.argv[2]
ctypes.CDLL(None).prctl(SUBREAPER, 1, 0, 0, 0)
out_r, out_w = os.pipe()
init = os.fork()
if init == 0:
    os.close(out_r)
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:  # the orphan
            with open(f"{tmp}/orphan.pid", "w") as f:
                f.write(str(os.getpid()))
            open(f"{tmp}/go").read()  # a FIFO: returns once the test opened it
            os._exit(0)
        os._exit(0)
    os.waitpid(middle, 0)
    os.read(os.open(f"{tmp}/never", os.O_RDONLY), 1)  # another FIFO: init sleeps
    os._exit(0)
os.close(out_w)
os.set_inheritable(out_r, True)
with open(f"{tmp}/init.pid", "w") as f:
    f.write(str(init))
os.execv(native, [native, "--dir", f"{tmp}/c", "--init-pid", str(init), "--stdout-fd",
                  str(out_r), "--stderr-fd", "-1", "--cgroup", "/muelle-test-none", "--",
                  "sh", "-c", f"grep SigBlk /proc/self/status > {tmp}/delete-mask"])
""".replace("SUBREAPER", str(PR_SET_CHILD_SUBREAPER))


def _proc_status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_an_idle_tail_sleeps_and_still_reaps_orphans(tmp_path: Path) -> None:
    """While init runs and nothing is written, the tail does not wake (it polled every
    100 ms: 1000 sleeping containers spent ~17% of a CPU on it); an orphan's exit still
    wakes it to reap the zombie, init's exit is recorded, and the delete runs with no
    signal blocked."""
    (tmp_path / "c").mkdir()
    for fifo in ("go", "never"):
        os.mkfifo(tmp_path / fifo)
    tail = subprocess.Popen([sys.executable, "-S", "-c", IDLE_STAND_IN, str(tmp_path),
                             str(NATIVE)])
    try:
        _wait_for(lambda: os.path.exists(tmp_path / "orphan.pid")
                  and os.path.realpath(f"/proc/{tail.pid}/exe") == str(NATIVE)
                  and _proc_status(tail.pid, "State").startswith("S"), "the tail to settle")
        orphan = int((tmp_path / "orphan.pid").read_text())
        _wait_for(lambda: _proc_status(orphan, "PPid") == str(tail.pid), "the orphan")
        before = int(_proc_status(tail.pid, "voluntary_ctxt_switches"))
        time.sleep(0.5)  # an interval to count wake-ups in, not a wait for a state
        assert int(_proc_status(tail.pid, "voluntary_ctxt_switches")) - before <= 1
        with open(tmp_path / "go", "w"):
            pass  # the orphan exits ...
        _wait_for(lambda: not os.path.exists(f"/proc/{orphan}"), "the orphan reaped")
        os.kill(int((tmp_path / "init.pid").read_text()), 9)
        assert tail.wait(30) == 0
        status = json.loads((tmp_path / "c" / "status.json").read_text())
        assert status["exit_code"] == 137
        _wait_for(lambda: os.path.exists(tmp_path / "delete-mask")
                  and (tmp_path / "delete-mask").read_text().strip() != "", "the delete")
        assert int((tmp_path / "delete-mask").read_text().split()[1], 16) == 0
    finally:
        tail.kill()
        tail.wait()
        with contextlib.suppress(OSError):
            fd = os.open(tmp_path / "go", os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)


# A stand-in monitor with the real stdin relay (services/shim/stdin.py): it makes the relay,
# starts an "init" with the relay's stdin (a pipe, or a pty made here as the runtime does),
# steps the relay until it holds what the test waits for, and hands it over to the tail
# with monitor.hand_over, as monitor.run does.
RELAY_STAND_IN = """
import ctypes, json, os, sys, time
p = json.load(open(sys.argv[1]))
sys.path.insert(0, p["repo"])
from services.shim import monitor
from services.shim.logs import LogWriter
from services.shim.stdin import StdinRelay
from services.shim.store import ContainerDir
try:
    ctypes.CDLL(None).prctl(monitor.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    relay = StdinRelay(p["socket"], p["once"], True, p["terminal"])
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    master = -1
    if p["terminal"]:
        master, slave = os.openpty()
    init = os.fork()
    if init == 0:
        if p["terminal"]:
            os.setsid()
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
        else:
            os.dup2(relay.read_fd, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
        os.execvp(p["init"][0], p["init"])
    os.close(out_w)
    os.close(err_w)
    fds = (out_r, err_r, -1)
    if p["terminal"]:
        os.close(slave)
        relay.attach_terminal(master)
        for fd in (out_r, err_r):
            os.close(fd)
        fds = (-1, -1, master)
    relay.container_side_sent()
    open(p["dir"] + "/ready", "w").close()
    deadline = time.monotonic() + 30
    while p["hold"] and not (relay.pending and relay.inbuf) and time.monotonic() < deadline:
        relay._step()
        time.sleep(0.01)
    if p["no_tail"]:  # the exec fails: the monitor goes on in Python
        monitor.NATIVE_TAIL = monitor.Path(p["dir"]) / "no-such-tail"
    writer = monitor.hand_over(ContainerDir(monitor.Path(p["dir"])),
                               LogWriter(p["dir"] + "/container.log"), fds, init,
                               "/muelle-test-none", ["true"], (0, 1), relay)
    monitor.pump(writer, {fd: "stdout" if fd != fds[1] else "stderr" for fd in fds if fd >= 0},
                 init)
    writer.close()
    relay.close()
    os._exit(0)
finally:
    os._exit(99)
"""


def start_relay_tail(cdir: Path, init: list[str], *, once: bool, terminal: bool,
                     hold: bool, no_tail: bool = False,
                     ) -> tuple[subprocess.Popen[bytes], str]:
    cdir.mkdir()
    params = cdir.parent / f".{cdir.name}.stand-in.json"
    sock = str(cdir / "io" / "c.sock")
    params.write_text(json.dumps({
        "repo": str(Path(__file__).parents[3]), "socket": sock, "once": once,
        "terminal": terminal, "init": init, "dir": str(cdir), "hold": hold,
        "no_tail": no_tail}))
    proc = subprocess.Popen([sys.executable, "-S", "-c", RELAY_STAND_IN, str(params)])
    _STARTED.append(proc)
    wait_until(lambda: (cdir / "ready").exists())
    return proc, sock


_STARTED: list[subprocess.Popen[bytes]] = []


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for child in map(int, f.read().split()):
                    out += [child, *_descendants(child)]
    return out


@pytest.fixture(autouse=True)
def _no_stand_in_left() -> Iterator[None]:
    """A relay stand-in (and its container stand-in, in a session of its own with -t) a
    failing test left running is killed, children first."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            for pid in [*reversed(_descendants(proc.pid)), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(10)


def wait_until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def is_native(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/exe") == str(NATIVE)
    return False


def logged(cdir: Path) -> bytes:
    return b"".join(json.loads(line)["log"].encode("utf-8", "surrogateescape")
                    for line in (cdir / "container.log").read_bytes().splitlines())


def test_stdin_relay_handed_over_mid_stream(tmp_path: Path) -> None:
    """The tail goes on with the client's connection, the bytes the container has not read
    yet and a frame Python read half of; the client's EOF closes stdin (stdin_once)."""
    cdir = tmp_path / "c"
    go = cdir / "go"
    proc, sock = start_relay_tail(
        cdir, ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.01; done; exec cat"],
        once=True, terminal=False, hold=True)
    big = b"x" * 200_000 + b"\n"
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(sock)
        two = stdin.frame(b"two\n")
        client.sendall(stdin.frame(big) + stdin.frame(b"one\n") + two[:6])
        wait_until(lambda: is_native(proc.pid))  # the frame of "two" is half read
        go.touch()
        client.sendall(two[6:] + stdin.frame(b""))
        assert proc.wait(60) == 0
    assert logged(cdir) == big + b"one\ntwo\n"
    assert json.loads((cdir / "status.json").read_text())["exit_code"] == 0
    assert not os.path.exists(sock)


def test_terminal_handed_over(tmp_path: Path) -> None:
    """A pty master: its output logged at once (unbuffered), typing goes into it, a resize
    is TIOCSWINSZ on it; a client that leaves is a detach, the next one is read."""
    cdir = tmp_path / "c"
    proc, sock = start_relay_tail(
        cdir, ["sh", "-c", "read a; printf 'prompt> '; read b; echo got $a $b; stty size; exit 5"],
        once=False, terminal=True, hold=False)
    wait_until(lambda: is_native(proc.pid))
    stdin.send(sock, [b"one\n"], eof=lambda: False)  # a detach, the terminal stays open
    wait_until(lambda: b"prompt> " in logged(cdir))  # an unfinished line is logged at once
    stdin.send(sock, [(33, 77), b"two\n"], eof=lambda: False)
    assert proc.wait(60) == 0
    assert json.loads((cdir / "status.json").read_text())["exit_code"] == 5
    assert b"got one two\r\n33 77\r\n" in logged(cdir)
    assert not os.path.exists(sock)


def test_relay_goes_on_in_python_when_the_tail_is_missing(tmp_path: Path) -> None:
    """A failed exec of the tail thaws the relay: the Python monitor goes on with it."""
    cdir = tmp_path / "c"
    proc, sock = start_relay_tail(cdir, ["cat"], once=True, terminal=False, hold=False,
                                  no_tail=True)
    wait_until(lambda: "not started" in (cdir / "monitor.log").read_text()
               if (cdir / "monitor.log").exists() else False)
    stdin.send(sock, [b"still relayed\n"], eof=lambda: True)
    assert proc.wait(60) == 0
    assert logged(cdir) == b"still relayed\n"
