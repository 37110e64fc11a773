"""A container's stdin, owned by its monitor and fed through the shim's Attach stream."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from muelle.shim.v1 import shim_pb2 as pb

from tests.integration.shim.conftest import RUNTIMES, ShimProcess
from vocab.errors import FailedPrecondition

pytestmark = pytest.mark.root


def attach(shim: ShimProcess, cid: str, data: list[bytes], output: bool = False,
           close: bool = True) -> bytes:
    def inputs() -> Iterator[pb.AttachInput]:
        yield pb.AttachInput(start=pb.AttachStart(id=cid, stdin=True, output=output))
        for chunk in data:
            yield pb.AttachInput(stdin=chunk)
        if close:
            yield pb.AttachInput(close_stdin=True)

    return b"".join(e.data for e in shim.stub.Attach(inputs(), timeout=60))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stdin_once_reaches_the_container_then_eof(shim: ShimProcess, runtime: str) -> None:
    cid = shim.create(["sh", "-c", "cat; echo done"], runtime=runtime, open_stdin=True,
                      stdin_once=True)
    shim.stub.Start(pb.StartRequest(id=cid))
    out = attach(shim, cid, [b"hi\n", b"there\n"], output=True)
    assert out == b"hi\nthere\ndone\n"
    assert shim.stub.Wait(pb.WaitRequest(id=cid)).exit_code == 0
    # Restarted, it gets a fresh stdin again.
    shim.stub.Start(pb.StartRequest(id=cid))
    attach(shim, cid, [b"again\n"])
    assert shim.stub.Wait(pb.WaitRequest(id=cid)).exit_code == 0
    assert shim.output(cid) == b"hi\nthere\ndone\nagain\ndone\n"


def test_stdin_stays_open_across_clients_without_once(shim: ShimProcess) -> None:
    cid = shim.create(["sh", "-c", "read a; read b; echo $a$b"], open_stdin=True)
    shim.stub.Start(pb.StartRequest(id=cid))
    attach(shim, cid, [b"one\n"])
    attach(shim, cid, [b"two\n"])
    assert shim.stub.Wait(pb.WaitRequest(id=cid)).exit_code == 0
    assert shim.output(cid) == b"onetwo\n"


def test_stdin_refused_when_not_open(shim: ShimProcess) -> None:
    cid = shim.create(["sleep", "100"])
    shim.stub.Start(pb.StartRequest(id=cid))
    with pytest.raises(FailedPrecondition, match="not open"):
        attach(shim, cid, [b"x"])
    # Without -i the container's stdin is /dev/null, as before.
    cid2, status = shim.run(["sh", "-c", "cat; echo eof"])
    assert status.exit_code == 0 and shim.output(cid2) == b"eof\n"


def test_a_detach_leaves_stdin_open_even_with_once(shim: ShimProcess) -> None:
    cid = shim.create(["sh", "-c", "cat; echo done"], open_stdin=True, stdin_once=True)
    shim.stub.Start(pb.StartRequest(id=cid))
    attach(shim, cid, [b"a\n"], close=False)  # the client went away without EOF
    assert shim.stub.State(pb.StateRequest(id=cid)).status == "running"
    attach(shim, cid, [b"b\n"])
    assert shim.stub.Wait(pb.WaitRequest(id=cid)).exit_code == 0
    assert shim.output(cid) == b"a\nb\ndone\n"


def test_sockets_are_removed_even_after_a_killed_monitor(shim: ShimProcess) -> None:
    cid = shim.create(["sleep", "100"], open_stdin=True, terminal=True)
    shim.stub.Start(pb.StartRequest(id=cid))
    io = shim.dir / "run" / "io"
    assert sorted(p.suffix for p in io.iterdir()) == [".sock"]  # console: received, gone
    monitor = int((shim.dir / "root" / "shim" / "containers" / cid / "monitor.pid")
                  .read_text())
    os.kill(monitor, signal.SIGKILL)
    shim.stub.Delete(pb.DeleteRequest(id=cid, force=True))
    assert not list(io.iterdir())


def test_stdin_and_terminal_survive_a_shim_restart(shim: ShimProcess) -> None:
    cid = shim.create(["sh"], terminal=True, open_stdin=True, stdin_once=True)
    shim.stub.Start(pb.StartRequest(id=cid))
    shim.kill9()
    shim.start()  # the monitor kept the pty and the socket: found again by path

    def inputs() -> Iterator[pb.AttachInput]:
        yield pb.AttachInput(start=pb.AttachStart(id=cid, stdin=True))
        yield pb.AttachInput(resize=pb.ConsoleSize(rows=44, cols=88))
        yield pb.AttachInput(stdin=b"stty size; exit 6\n")

    list(shim.stub.Attach(inputs(), timeout=60))
    assert shim.stub.Wait(pb.WaitRequest(id=cid), timeout=60).exit_code == 6
    assert b"44 88\r\n" in shim.output(cid)
