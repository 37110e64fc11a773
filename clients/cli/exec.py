"""`muelle exec [-i] [-e K=V] [-u USER] [-w DIR] CONTAINER CMD...` (docker exec)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from clients.cli.context import Context
from clients.cli.units import UsageError, parse_env


def stdin_chunks(fd: int = 0) -> Iterator[bytes]:
    """Our stdin as it comes (not line-buffered); ends at EOF."""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        yield data


def exec_(ctx: Context, args: argparse.Namespace) -> int:
    if not args.command:
        raise UsageError('"exec" requires at least 2 arguments: CONTAINER COMMAND [ARG...]')
    if args.tty:
        raise UsageError("a TTY (-t) is not supported by exec yet")
    stream = ctx.client().exec(
        args.container, list(args.command),
        stdin=stdin_chunks() if args.interactive else None,
        env=parse_env(args.env, ctx.environ), user=args.user, working_dir=args.workdir)
    try:
        for event in stream:
            if event.HasField("exit"):
                if event.exit.error:
                    ctx.error(f"OCI runtime exec failed: {event.exit.error}")
                return int(event.exit.exit_code)
            ctx.write_bytes(event.output.stream, event.output.data)
    finally:
        stream.cancel()
    ctx.error("muelle: the engine ended the exec stream without an exit status")
    return 1
