"""`export`, `import`, `commit` and `build` (docker's verbs and flags)."""

from __future__ import annotations

import argparse
import io
import os
import secrets
import sys
import tarfile
import tempfile
from typing import IO

from clients.cli.archive import chunks, open_input, write_stream
from clients.cli.context import Context
from clients.cli.units import UsageError
from vocab.errors import MuelleError


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


def _context_tar(path: str, dockerfile: str) -> tuple[IO[bytes], str]:
    """The build context as a tar in a temp file, and the Dockerfile's name in it.
    ``path`` "-": stdin is the context tar, or a Dockerfile alone (as docker decides)."""
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    name = ""
    if path == "-":
        data = open_input("-", "build").read()
        if data[:2] == b"\x1f\x8b" or data[257:262] == b"ustar":
            tmp.write(data)
            name = dockerfile
        else:
            with tarfile.open(fileobj=tmp, mode="w") as tar:
                info = tarfile.TarInfo("Dockerfile")
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
            name = "Dockerfile"
        tmp.seek(0)
        return tmp, name
    if not os.path.isdir(path):
        tmp.close()
        raise UsageError(f'unable to prepare context: path "{path}" not found')
    with tarfile.open(fileobj=tmp, mode="w") as tar:
        tar.add(path, arcname=".", recursive=True)
        if dockerfile == "-":
            data = sys.stdin.buffer.read()
            name = f".dockerfile.{secrets.token_hex(10)}"
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        elif dockerfile:
            # -f is relative to the current directory; one outside the context is sent
            # under a generated name, as docker does.
            full = os.path.abspath(dockerfile)
            rel = os.path.relpath(full, os.path.abspath(path))
            if rel.startswith(".."):
                if not os.path.isfile(full):
                    raise UsageError(f"unable to prepare context: unable to evaluate "
                                     f"symlinks in Dockerfile path: lstat {full}: no such "
                                     "file or directory")
                name = f".dockerfile.{secrets.token_hex(10)}"
                tar.add(full, arcname=name)
            else:
                name = rel
    tmp.seek(0)
    return tmp, name


def _pairs(values: list[str], flag: str, from_env: bool) -> dict[str, str]:
    out = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not key:
            raise UsageError(f"invalid argument {value!r} for \"{flag}\" flag")
        if not eq:
            if not from_env:
                val = ""
            elif key in os.environ:
                val = os.environ[key]
            else:
                continue  # docker: --build-arg NAME with NAME unset passes nothing
        out[key] = val
    return out


def build(ctx: Context, args: argparse.Namespace) -> int:
    if args.platform and args.platform.split("/")[0] != "linux":
        raise UsageError(f"--platform {args.platform}: only linux is supported")
    f, name = _context_tar(args.path, args.file)
    try:
        stream = ctx.client().build(
            chunks(f), dockerfile=name, tags=args.tag,
            build_args=_pairs(args.build_arg, "--build-arg", True), target=args.target,
            no_cache=args.no_cache, pull=args.pull,
            labels=_pairs(args.label, "--label", False), quiet=args.quiet,
            network_mode=args.network, platform=args.platform)
        image_id, failed = "", False
        try:
            for event in stream:
                if event.HasField("stream"):
                    ctx.out.write(event.stream)
                    ctx.out.flush()
                elif event.HasField("image_id"):
                    image_id = event.image_id
                elif event.HasField("run_failed"):
                    failed = True
        except MuelleError as exc:
            if not failed:
                raise
            ctx.error(str(exc))  # docker prints a failed RUN's message bare
            return 1
    finally:
        f.close()
    if args.quiet:
        ctx.line(image_id)
    if args.iidfile:
        with open(args.iidfile, "w") as out:
            out.write(image_id)
    return 0
