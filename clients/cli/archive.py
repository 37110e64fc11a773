"""`save` and `load`: image archives streamed to and from the gateway in chunks."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

from clients.cli.context import Context
from clients.cli.units import UsageError

CHUNK = 1 << 20


def save(ctx: Context, args: argparse.Namespace) -> int:
    stream = ctx.client().save_images(args.images)
    if not args.output:
        out = getattr(ctx.out, "buffer", None)
        if out is None or ctx.isatty():
            raise UsageError("cowardly refusing to save to a terminal. "
                             "Use the -o flag or redirect")
        for chunk in stream:
            out.write(chunk.data)
        out.flush()
        return 0
    # Written next to the target and renamed: a failed save leaves no truncated archive.
    target = os.path.abspath(args.output)
    fd, tmp = tempfile.mkstemp(prefix=".muelle-save-", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in stream:
                f.write(chunk.data)
        os.rename(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return 0


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    while data := f.read(CHUNK):
        yield data


def load(ctx: Context, args: argparse.Namespace) -> int:
    from services.core.reference import parse

    if args.input:
        try:
            f: IO[bytes] = open(args.input, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"open {args.input}: {exc.strerror}") from None
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("requested load from stdin, but stdin is empty")
        f = sys.stdin.buffer
    try:
        reply = ctx.client().load_images(_chunks(f))
    finally:
        if args.input:
            f.close()
    for image in reply.images:
        if args.quiet:
            continue
        if not image.names:
            ctx.line(f"Loaded image ID: {image.id}")
        for name in image.names:
            ctx.line(f"Loaded image: {parse(name).familiar}")
    return 0
