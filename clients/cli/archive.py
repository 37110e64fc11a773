"""`save` and `load`: image archives streamed to and from the gateway in chunks."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from clients.cli.context import Context
from clients.cli.units import UsageError

CHUNK = 1 << 20


def save(ctx: Context, args: argparse.Namespace) -> int:
    return write_stream(ctx, ctx.client().save_images(args.images), args.output, "save")


def write_stream(ctx: Context, stream: Iterable[Any], output: str, verb: str) -> int:
    """ArchiveChunk data to ``output`` (atomically) or to stdout when it is not a tty."""
    if not output:
        out = getattr(ctx.out, "buffer", None)
        if out is None or ctx.isatty():
            raise UsageError(f"cowardly refusing to {verb} to a terminal. "
                             "Use the -o flag or redirect")
        for chunk in stream:
            out.write(chunk.data)
        out.flush()
        return 0
    # Written next to the target and renamed: a failed save leaves no truncated archive.
    target = os.path.abspath(output)
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


def chunks(f: IO[bytes]) -> Iterator[bytes]:
    while data := f.read(CHUNK):
        yield data


def open_input(path: str, verb: str) -> IO[bytes]:
    """``path`` opened for reading, or stdin's bytes for "" or "-"."""
    if path and path != "-":
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise UsageError(f"open {path}: {exc.strerror}") from None
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(f"requested {verb} from stdin, but stdin is empty")
    return sys.stdin.buffer


def load(ctx: Context, args: argparse.Namespace) -> int:
    from vocab.reference import parse

    f = open_input(args.input, "load")
    try:
        reply = ctx.client().load_images(chunks(f))
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
