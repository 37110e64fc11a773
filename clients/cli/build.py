"""`export`, `import` and `commit` (docker's verbs and flags)."""

from __future__ import annotations

import argparse

from clients.cli.archive import chunks, open_input, write_stream
from clients.cli.context import Context


def export(ctx: Context, args: argparse.Namespace) -> int:
    # docker says "save" here too
    return write_stream(ctx, ctx.client().export_container(args.container), args.output,
                        "save")


def import_(ctx: Context, args: argparse.Namespace) -> int:
    f = open_input(args.file, "import")
    try:
        reply = ctx.client().import_image(chunks(f), args.reference, args.message)
    finally:
        if args.file != "-":
            f.close()
    ctx.line(reply.id)
    return 0


def commit(ctx: Context, args: argparse.Namespace) -> int:
    reply = ctx.client().commit_container(args.container, args.reference, args.author,
                                          args.message, pause=args.pause)
    ctx.line(reply.id)
    return 0
