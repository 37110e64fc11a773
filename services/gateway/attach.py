"""AttachContainerStream: AttachContainer plus the client's stdin (docker run -i, attach).

Output is the existing attach flow (Engine.attach: start, log follow, exit status, --rm);
stdin goes to the shim's Attach stream from a thread, so a container that does not read
its stdin never holds up the output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2

from services.core.logging import get_logger
from services.gateway.engine import Engine
from services.gateway.inputs import fits_console
from vocab.errors import InvalidArgument, MuelleError


class _ShimInputs:
    """The client's stdin messages as the shim's; ``detached`` once they end without
    close_stdin (the client's detach keys, or the client gone)."""

    def __init__(self, cid: str, inputs: Iterator[engine_pb2.AttachContainerInput]) -> None:
        self.cid = cid
        self.inputs = inputs
        self.detached = False

    def __iter__(self) -> Iterator[shim_pb2.AttachInput]:
        yield shim_pb2.AttachInput(start=shim_pb2.AttachStart(id=self.cid, stdin=True))
        try:
            for msg in self.inputs:
                kind = msg.WhichOneof("input")
                if kind == "stdin":
                    yield shim_pb2.AttachInput(stdin=msg.stdin)
                elif kind == "resize" and fits_console(msg.resize.rows, msg.resize.cols):
                    # (one that does not fit a winsize is dropped: the stream carries on)
                    yield shim_pb2.AttachInput(resize=shim_pb2.ConsoleSize(
                        rows=msg.resize.rows, cols=msg.resize.cols))
                elif kind == "close_stdin":
                    yield shim_pb2.AttachInput(close_stdin=True)
                    return
        except Exception:  # noqa: BLE001 - the client went away: a detach, not an EOF
            pass
        # Only here, not when the shim stopped reading (e.g. the container exited).
        self.detached = True


def attach_stream(engine: Engine, inputs: Iterator[engine_pb2.AttachContainerInput],
                  on_cancel: Callable[[Callable[[], None]], Any] | None = None,
                  ) -> Iterator[engine_pb2.AttachEvent]:
    """A client that ends its input without close_stdin has detached: once its stdin is
    delivered the output stream ends (no exit event); the container keeps running."""
    first = next(inputs, None)
    if first is None or first.WhichOneof("input") != "start":
        raise InvalidArgument("the first AttachContainerStream message must be start")
    req = first.start
    start_feed = None
    cancels: list[Callable[[], None]] = []

    def register(cancel: Callable[[], None]) -> None:
        cancels.append(cancel)
        if on_cancel is not None:
            on_cancel(cancel)

    if req.stdin:
        cid = engine.records.lookup(req.container).id
        log = get_logger(container=cid[:12])

        def feed() -> None:
            shim_inputs = _ShimInputs(cid, inputs)
            try:
                for _ in engine.shim.Attach(iter(shim_inputs)):
                    pass  # stdin only: the shim sends no output
            except MuelleError as exc:  # e.g. not created with -i: docker ignores stdin too
                log.info("stdin not attached", error=str(exc))
            if shim_inputs.detached:
                log.info("detached")
                for cancel in cancels:
                    cancel()

        def start_feed() -> None:
            threading.Thread(target=feed, name=f"attach-stdin-{cid[:12]}",
                             daemon=True).start()

    # Stdin only once the output is followed: what the container answers is not missed.
    yield from engine.attach(req.container, start=req.start, logs=req.logs,
                             on_cancel=register, on_attached=start_feed)
