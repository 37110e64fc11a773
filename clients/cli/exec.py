"""`muelle exec [-i] [-t] [-d] [-e K=V] [-u USER] [-w DIR] CONTAINER CMD...` (docker exec)."""

from __future__ import annotations

import argparse
import contextlib
import os

from clients.cli.context import Context
from clients.cli.units import UsageError, parse_env


def exec_(ctx: Context, args: argparse.Namespace) -> int:
    if not args.command:
        raise UsageError('"exec" requires at least 2 arguments: CONTAINER COMMAND [ARG...]')
    if args.detach:
        return _detached(ctx, args)
    if args.tty and args.interactive and not os.isatty(0):
        raise UsageError("the input device is not a TTY")
    from clients.cli import terminal
    from clients.cli.attach import Stdin

    with contextlib.ExitStack() as stack:
        winch = stack.enter_context(terminal.Winch()) if args.tty else None
        stdin = Stdin(b"", read=args.interactive, winch_fd=winch.fd if winch else -1)
        stream = ctx.client().exec(
            args.container, list(args.command),
            stdin=iter(stdin) if args.interactive or args.tty else None,
            interactive=args.interactive, env=parse_env(args.env, ctx.environ),
            user=args.user, working_dir=args.workdir, tty=args.tty,
            console_size=terminal.size() if args.tty else None)
        if args.tty and args.interactive:
            stack.enter_context(terminal.raw(0))
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


def _detached(ctx: Context, args: argparse.Namespace) -> int:
    """exec -d: nothing printed, 0 once the process runs; a start error as docker says it."""
    stream = ctx.client().exec(args.container, list(args.command),
                               env=parse_env(args.env, ctx.environ), user=args.user,
                               working_dir=args.workdir, tty=args.tty, interactive=False,
                               detach=True)
    try:
        for event in stream:
            if event.HasField("exit"):
                if event.exit.error:
                    ctx.error(f"OCI runtime exec failed: {event.exit.error}")
                    return int(event.exit.exit_code) or 126
                return 0
    finally:
        stream.cancel()
    ctx.error("muelle: the engine ended the exec stream without an exit status")
    return 1
