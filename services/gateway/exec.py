"""ExecContainer: `docker exec`, a pass-through to the shim's Exec stream.

The gateway resolves the container reference and translates messages; the process runs
under the shim (services/shim/exec.py). Stdin flows client -> gateway -> shim as it
comes, output flows back as the shim sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2

from services.core.logging import get_logger
from services.gateway import inputs as inputs_check
from services.gateway.records import Records
from vocab.errors import InvalidArgument

# the neighbours' generated stubs, as connect() returns them (typing only)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from muelle.shim.v1 import shim_pb2_grpc


def exec_container(records: Records, shim: shim_pb2_grpc.ShimStub,
                   inputs: Iterator[engine_pb2.ExecContainerInput],
                   on_cancel: Callable[[Callable[[], None]], object] | None = None,
                   ) -> Iterator[engine_pb2.ExecContainerOutput]:
    first = next(inputs, None)
    if first is None or first.WhichOneof("input") != "start":
        raise InvalidArgument("the first ExecContainer message must be start")
    start = first.start
    inputs_check.no_nul(start)
    inputs_check.console_size(start.console_size.rows, start.console_size.cols)
    if not start.cmd:
        raise InvalidArgument("no command specified")
    rec = records.lookup(start.container)
    spec = shim_pb2.ExecSpec(id=rec.id, args=list(start.cmd), env=list(start.env),
                                user=start.user, cwd=start.working_dir,
                                stdin=start.interactive and not start.detach,
                                tty=start.tty, detach=start.detach,
                                timeout_seconds=start.timeout_seconds,
                                console_size=shim_pb2.ConsoleSize(
                                    rows=start.console_size.rows,
                                    cols=start.console_size.cols))

    def shim_inputs() -> Iterator[shim_pb2.ExecInput]:
        yield shim_pb2.ExecInput(start=spec)
        for msg in inputs:
            kind = msg.WhichOneof("input")
            if kind == "stdin":
                yield shim_pb2.ExecInput(stdin=msg.stdin)
            elif kind == "resize" and inputs_check.fits_console(msg.resize.rows,
                                                                 msg.resize.cols):
                # (one that does not fit a winsize is dropped: the stream carries on)
                yield shim_pb2.ExecInput(resize=shim_pb2.ConsoleSize(
                    rows=msg.resize.rows, cols=msg.resize.cols))
            elif kind == "close_stdin":
                yield shim_pb2.ExecInput(close_stdin=True)
                return

    get_logger(container=rec.id[:12]).info("exec", cmd=list(start.cmd)[:1])
    stream = shim.Exec(shim_inputs())
    if on_cancel is not None:
        # A client that leaves (or whose deadline passes) while the process is silent:
        # the loop below waits for output that may never come, so it would not notice.
        # Cancelling the shim's stream kills the process at once.
        on_cancel(stream.cancel)
    try:
        for out in stream:
            if out.WhichOneof("event") == "exit":
                yield engine_pb2.ExecContainerOutput(exit=engine_pb2.ExecContainerExit(
                    exit_code=out.exit.exit_code, error=out.exit.error,
                    timed_out=out.exit.timed_out))
            else:
                yield engine_pb2.ExecContainerOutput(output=engine_pb2.LogEntry(
                    stream=out.output.stream, data=out.output.data, time=out.output.time))
    finally:
        # the client left early: the shim kills the process (grpc-stubs leave cancel untyped)
        stream.cancel()  # type: ignore[no-untyped-call]
