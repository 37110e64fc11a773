"""`-t` through the whole engine, the CLI driven under a real pty (python's pty module):
the container's terminal, raw mode, the size at start and after a resize, detach keys."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import termios
import time

import pytest

from tests.support.engine import CLI, Engine

pytestmark = pytest.mark.root

RUNTIMES = ["muelle", "runc", "crun"]


class Terminal:
    """The CLI running with a pty as its controlling terminal."""

    def __init__(self, engine: Engine, *args: str, rows: int = 30, cols: int = 100) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: set the size first, so the CLI reads it at start
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execve(CLI, [CLI, *args], engine.env)
        self.out = b""
        self.code: int | None = None

    def expect(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not in {self.out!r}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                assert data, f"EOF before {text!r}: {self.out!r}"
                self.out += data

    def wait_raw(self, timeout: float = 60) -> None:
        """Until the CLI has put its terminal in raw mode (typed keys then reach it as is)."""
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.fd)[3] & termios.ICANON:
            assert time.monotonic() < deadline, "the CLI did not enter raw mode"
            time.sleep(0.02)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def resize(self, rows: int, cols: int) -> None:
        # The kernel sends SIGWINCH to the CLI (the pty's foreground process group).
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
                break
            assert time.monotonic() < deadline, f"the CLI did not exit: {self.out!r}"
            with contextlib.suppress(OSError):  # keep the pty drained
                if select.select([self.fd], [], [], 0.05)[0]:
                    self.out += os.read(self.fd, 65536)
        return self.code

    def close(self) -> None:
        if self.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        os.close(self.fd)


def _shell_session(term: Terminal) -> None:
    term.expect(b"# ")
    term.send(b"tty; stty size\r")
    term.expect(b"30 100\r\n")
    assert b"/dev/pts/0\r\n" in term.out
    term.resize(50, 120)
    term.send(b"stty size\r")
    term.expect(b"50 120\r\n")
    term.send(b"exit 3\r")
    assert term.wait() == 3


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_it_is_a_real_terminal(engine: Engine, image: str, runtime: str) -> None:
    term = Terminal(engine, "run", "--rm", "-it", "--runtime", runtime, image, "sh")
    try:
        _shell_session(term)
    finally:
        term.close()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_it_is_a_real_terminal(engine: Engine, image: str, runtime: str) -> None:
    cid = engine.cli("run", "-d", "--runtime", runtime, image, "sleep", "1000").stdout.strip()
    term = Terminal(engine, "exec", "-it", cid, "sh")
    try:
        _shell_session(term)
    finally:
        term.close()
        engine.cli("rm", "-f", cid, check=False)


def test_run_t_output_and_detach_keys(engine: Engine, image: str) -> None:
    # -t without -i: the output comes through the container's terminal.
    proc = engine.cli("run", "--rm", "-t", image, "sh", "-c", "tty; echo hi")
    assert proc.stdout.splitlines() == ["/dev/pts/0", "hi"]
    cid = engine.cli("run", "-dit", image, "sh").stdout.strip()
    term = Terminal(engine, "attach", cid)
    try:
        term.wait_raw()
        term.send(b"echo attached\r")
        term.expect(b"attached\r\n")
        term.send(b"\x10\x11")  # ctrl-p ctrl-q: detach, the container keeps running
        assert term.wait() == 0
        assert json.loads(engine.cli("inspect", cid).stdout)[0]["State"]["Running"]
    finally:
        term.close()
        engine.cli("rm", "-f", cid, check=False)
