"""The gateway's IO pass-throughs (exec, stdin, tty options) against a fake shim."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2

from services.gateway.engine import Engine
from services.gateway.exec import exec_container
from services.gateway.records import Records
from tests.unit.gateway.fakes import FakeImages, FakeShim, FakeStream
from vocab.errors import InvalidArgument


class ExecRuntime(FakeShim):
    def __init__(self) -> None:
        super().__init__()
        self.exec_inputs: list[shim_pb2.ExecInput] = []

    def Exec(self, inputs: Iterator[shim_pb2.ExecInput]) -> FakeStream:  # noqa: N802
        def gen() -> Iterator[shim_pb2.ExecOutput]:
            self.exec_inputs = list(inputs)
            yield shim_pb2.ExecOutput(output=shim_pb2.LogEntry(stream="stdout",
                                                                     data=b"o"))
            yield shim_pb2.ExecOutput(exit=shim_pb2.ExecExit(exit_code=127,
                                                                   error="nope"))

        return FakeStream(gen(), lambda: None)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Engine, ExecRuntime]]:
    runtime = ExecRuntime()
    eng = Engine(Records(tmp_path / "gw"), FakeImages(), runtime)
    yield eng, runtime
    eng.records.close()


def test_create_passes_stdin_and_terminal_options(setup: tuple[Engine, ExecRuntime]) -> None:
    engine, runtime = setup
    req = engine_pb2.CreateContainerRequest(image="busybox", tty=True, open_stdin=True,
                                            stdin_once=True)
    req.console_size.rows, req.console_size.cols = 30, 100
    cid = engine.create(req).id
    spec = runtime.containers[cid]["spec"]
    assert spec.terminal and spec.open_stdin and spec.stdin_once
    assert (spec.console_size.rows, spec.console_size.cols) == (30, 100)
    assert "TERM=xterm" not in spec.env  # the shim adds it, as docker's daemon does


def test_exec_is_translated_both_ways(setup: tuple[Engine, ExecRuntime]) -> None:
    engine, runtime = setup
    cid = engine.create(engine_pb2.CreateContainerRequest(image="busybox", name="web")).id
    start = engine_pb2.ExecContainerStart(container="web", cmd=["sh"], env=["A=1"],
                                          user="app", working_dir="/tmp", interactive=True,
                                          tty=True)
    start.console_size.rows, start.console_size.cols = 3, 4
    inputs = iter([engine_pb2.ExecContainerInput(start=start),
                   engine_pb2.ExecContainerInput(stdin=b"ls\n"),
                   engine_pb2.ExecContainerInput(resize=engine_pb2.ConsoleSize(rows=5, cols=6)),
                   engine_pb2.ExecContainerInput(close_stdin=True)])
    out = list(exec_container(engine.records, runtime, inputs))
    assert out[0].output.data == b"o" and out[1].exit.exit_code == 127
    assert out[1].exit.error == "nope"
    spec = runtime.exec_inputs[0].start
    assert (spec.id, list(spec.args), list(spec.env), spec.user, spec.cwd) == (
        cid, ["sh"], ["A=1"], "app", "/tmp")
    assert spec.stdin and spec.tty and (spec.console_size.rows, spec.console_size.cols) == (3, 4)
    assert [m.WhichOneof("input") for m in runtime.exec_inputs[1:]] == [
        "stdin", "resize", "close_stdin"]


def test_bad_exec_requests(setup: tuple[Engine, ExecRuntime]) -> None:
    engine, runtime = setup
    with pytest.raises(InvalidArgument, match="must be start"):
        list(exec_container(engine.records, runtime,
                            iter([engine_pb2.ExecContainerInput(stdin=b"x")])))
    with pytest.raises(InvalidArgument, match="no command"):
        list(exec_container(engine.records, runtime, iter([engine_pb2.ExecContainerInput(
            start=engine_pb2.ExecContainerStart(container="web"))])))
