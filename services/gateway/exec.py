"""ExecContainer: `docker exec`, a pass-through to the shim's Exec stream.

The gateway resolves the container reference and passes the messages on (the shim's Exec
takes and sends the same types.v1 ExecInput and ExecOutput); the process runs
under the shim (services/shim/exec.py). Stdin flows client -> gateway -> shim as it
comes, output flows back as the shim sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from muelle.types.v1 import types_pb2

from services.core.logging import get_logger
from services.gateway import inputs as inputs_check
from services.gateway.records import Records
from vocab.errors import InvalidArgument

# the neighbours' generated stubs, as connect() returns them (typing only)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from muelle.shim.v1 import shim_pb2_grpc


def exec_container(records: Records, shim: shim_pb2_grpc.ShimStub,
                   inputs: Iterator[types_pb2.ExecInput],
                   on_cancel: Callable[[Callable[[], None]], object] | None = None,
                   ) -> Iterator[types_pb2.ExecOutput]:
    first = next(inputs, None)
    if first is None or first.WhichOneof("input") != "start":
        raise InvalidArgument("the first ExecContainer message must be start")
    start = first.start
    inputs_check.no_nul(start)
    inputs_check.console_size(start.console_size.rows, start.console_size.cols)
    if not start.cmd:
        raise InvalidArgument("no command specified")
    rec = records.lookup(start.container)
    # The shim takes the same message (types.v1) with the container's ID; stdin of a
    # detached process is not kept open (nobody would write it).
    start.container = rec.id
    start.interactive = start.interactive and not start.detach

    def shim_inputs() -> Iterator[types_pb2.ExecInput]:
        yield first
        for msg in inputs:
            kind = msg.WhichOneof("input")
            if kind == "resize" and not inputs_check.fits_console(msg.resize.rows,
                                                                   msg.resize.cols):
                continue  # one that does not fit a winsize is dropped: the stream goes on
            yield msg
            if kind == "close_stdin":
                return

    get_logger(container=rec.id[:12]).info("exec", cmd=list(start.cmd)[:1])
    stream = shim.Exec(shim_inputs())
    if on_cancel is not None:
        # A client that leaves (or whose deadline passes) while the process is silent:
        # reading the stream below waits for output that may never come, so it would not
        # notice.
        # Cancelling the shim's stream kills the process at once.
        on_cancel(stream.cancel)
    try:
        yield from stream  # the same messages (types.v1) both ways
    finally:
        # the client left early: the shim kills the process (grpc-stubs leave cancel untyped)
        stream.cancel()  # type: ignore[no-untyped-call]
