"""AttachContainerStream: AttachContainer plus the client's stdin (docker run -i, attach).

Output is the existing attach flow (Engine.attach: start, log follow, exit status, --rm);
stdin goes to the shim's Attach stream from a thread, so a container that does not read
its stdin never holds up the output.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.runtime.v1 import runtime_pb2

from services.core.errors import InvalidArgument, MuelleError
from services.core.logging import get_logger
from services.gateway.engine import Engine


def _shim_inputs(cid: str, inputs: Iterator[engine_pb2.AttachContainerInput],
                 ) -> Iterator[runtime_pb2.AttachInput]:
    yield runtime_pb2.AttachInput(start=runtime_pb2.AttachStart(id=cid, stdin=True))
    with contextlib.suppress(Exception):  # the client went away: a detach, not an EOF
        for msg in inputs:
            kind = msg.WhichOneof("input")
            if kind == "stdin":
                yield runtime_pb2.AttachInput(stdin=msg.stdin)
            elif kind == "close_stdin":
                yield runtime_pb2.AttachInput(close_stdin=True)
                return


def attach_stream(engine: Engine, inputs: Iterator[engine_pb2.AttachContainerInput],
                  on_cancel: Callable[[Callable[[], None]], Any] | None = None,
                  ) -> Iterator[engine_pb2.AttachEvent]:
    first = next(inputs, None)
    if first is None or first.WhichOneof("input") != "start":
        raise InvalidArgument("the first AttachContainerStream message must be start")
    req = first.start
    start_feed = None
    if req.stdin:
        cid = engine.records.lookup(req.container).id
        log = get_logger(container=cid[:12])

        def feed() -> None:
            try:
                for _ in engine.runtime.Attach(_shim_inputs(cid, inputs)):
                    pass  # stdin only: the shim sends no output
            except MuelleError as exc:  # e.g. not created with -i: docker ignores stdin too
                log.info("stdin not attached", error=str(exc))

        def start_feed() -> None:
            threading.Thread(target=feed, name=f"attach-stdin-{cid[:12]}",
                             daemon=True).start()

    # Stdin only once the output is followed: what the container answers is not missed.
    yield from engine.attach(req.container, start=req.start, logs=req.logs,
                             on_cancel=on_cancel, on_attached=start_feed)
