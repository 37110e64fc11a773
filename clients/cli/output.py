"""The output-only attach (`run` without -i, `start -a`, `attach --no-stdin`): the
container's output until it stops, then its exit code. Apart from attach.py, whose stdin
relay costs selectors and threads at import, which a plain `run` does not need."""

from __future__ import annotations

from clients.cli.context import Context
from clients.cli.errors import ENGINE_ERROR, RunFailed, engine_call, engine_iter, run_exit_code


def attach_output(ctx: Context, container: str, start: bool) -> int:
    """Stream the container's output until it stops; its exit code."""
    stream = engine_call(lambda: ctx.client().attach(container, start=start))
    try:
        for event in engine_iter(stream):
            if event.HasField("exit"):
                ex = event.exit
                if ex.error:
                    ctx.error(f"muelle: {ex.error}")
                    return int(ex.exit_code) or run_exit_code(ex.error)
                return int(ex.exit_code)
            ctx.write_bytes(event.output.stream, event.output.data)
    finally:
        stream.cancel()
    raise RunFailed("the engine ended the attach stream without an exit status",
                    ENGINE_ERROR)
