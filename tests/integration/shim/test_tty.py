"""A container with a terminal: the runtime's pty handed to the monitor over the console
socket, its size set at create and on resize, stdin written into it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from muelle.shim.v1 import shim_pb2 as pb
from muelle.types.v1 import types_pb2

from tests.integration.shim.conftest import RUNTIMES, ShimProcess

pytestmark = pytest.mark.root


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_terminal_is_a_pty_of_the_container(shim: ShimProcess, runtime: str) -> None:
    cid, status = shim.run(["sh", "-c", "tty; stty size; ls -l /dev/console | wc -l"],
                           runtime=runtime, terminal=True,
                           console_size=types_pb2.ConsoleSize(rows=30, cols=100))
    assert status.exit_code == 0
    assert shim.output(cid) == b"/dev/pts/0\r\n30 100\r\n1\r\n"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_terminal_stdin_and_resize(shim: ShimProcess, runtime: str) -> None:
    # Lines read and run without ash's line editor: at its prompt, ash asks the terminal
    # for the cursor position (ESC[6n) and takes the next input as the answer, so a
    # command typed in that window was eaten (a race with how fast the shell starts).
    cid = shim.create(["sh", "-c", 'while read -r line; do eval "$line"; done'],
                      runtime=runtime, terminal=True, open_stdin=True,
                      stdin_once=True, console_size=types_pb2.ConsoleSize(rows=30, cols=100))
    shim.stub.Start(pb.StartRequest(id=cid))

    seen = threading.Event()

    def inputs() -> Iterator[pb.AttachInput]:
        yield pb.AttachInput(start=pb.AttachStart(id=cid, stdin=True, output=True))
        yield pb.AttachInput(stdin=b"stty size\n")
        seen.wait(30)  # the shell has answered: resize only now
        yield pb.AttachInput(resize=types_pb2.ConsoleSize(rows=50, cols=120))
        yield pb.AttachInput(stdin=b"stty size; exit 4\n")

    out = b""
    for entry in shim.stub.Attach(inputs(), timeout=60):
        assert entry.stream == "stdout"
        out += entry.data
        if b"30 100\r\n" in out:
            seen.set()
    assert shim.stub.Wait(pb.WaitRequest(id=cid), timeout=60).exit_code == 4
    assert b"30 100\r\n" in out and b"50 120\r\n" in out, out
    assert out.index(b"30 100") < out.index(b"50 120")
    assert shim.output(cid) == out
