"""`export`, `import`, `commit` and `build` (docker's verbs and flags)."""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import tempfile
from typing import IO

from clients.cli.archive import chunks, open_input, write_stream
from clients.cli.context import Context
from clients.cli.system import _confirm
from clients.cli.units import UsageError, human_size
from vocab.dockerignore import Ignore  # the engine's rules: docker's CLI filters with them
from vocab.errors import MuelleError


def export(ctx: Context, args: argparse.Namespace) -> int:
    # docker says "save" here too
    return write_stream(ctx, ctx.client().export_container(args.container), args.output,
                        "save")


def import_(ctx: Context, args: argparse.Namespace) -> int:
    f = open_input(args.file, "import")
    try:
        reply = ctx.client().import_image(chunks(f), args.reference, args.message,
                                          changes=args.change)
    finally:
        if args.file != "-":
            f.close()
    ctx.line(reply.id)
    return 0


def commit(ctx: Context, args: argparse.Namespace) -> int:
    reply = ctx.client().commit_container(args.container, args.reference, args.author,
                                          args.message, pause=args.pause,
                                          changes=args.change)
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
        _add_context(tar, path, _kept_dockerfile(path, dockerfile))
        if dockerfile == "-":
            data = sys.stdin.buffer.read()
            name = f".dockerfile.{_token()}"
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
                name = f".dockerfile.{_token()}"
                tar.add(full, arcname=name, filter=_whole_seconds)
            else:
                name = rel
    tmp.seek(0)
    return tmp, name


def _token() -> str:
    """secrets.token_hex(10), without importing secrets (and hmac, hashlib) into every
    `muelle build` for the rare Dockerfile from stdin or outside the context."""
    return os.urandom(10).hex()


def _kept_dockerfile(path: str, dockerfile: str) -> str:
    """The Dockerfile's path in the context ("" when it is elsewhere or stdin)."""
    if dockerfile == "-":
        return ""
    full = os.path.abspath(dockerfile) if dockerfile else os.path.join(
        os.path.abspath(path), "Dockerfile")
    rel = os.path.relpath(full, os.path.abspath(path))
    return "" if rel.startswith("..") else rel.replace(os.sep, "/")


def _whole_seconds(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """mtimes truncated to the second, as the docker CLI sends a context (its archive
    package truncates them): what a COPY's files get, and a plain ustar header per file
    (a fraction of a second costs each file a PAX header block to write and to read)."""
    info.mtime = int(info.mtime)
    return info


def _add_context(tar: tarfile.TarFile, path: str, dockerfile: str) -> None:
    """The context directory, without what its .dockerignore leaves out: as the docker
    CLI, ignored files are never sent (a large ignored tree costs nothing), but the
    Dockerfile and .dockerignore always are (the engine reads them, and applies the same
    rules again for clients that send everything). An ignored directory is walked only
    when an exception may re-include something below it; it is then sent without its own
    entry, as docker sends it."""
    ignore = Ignore()
    try:
        with open(os.path.join(path, ".dockerignore"), encoding="utf-8",
                  errors="replace") as f:
            ignore = Ignore(f.read())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    always = {".dockerignore", dockerfile}

    def left_out(rel: str) -> bool:
        return rel not in always and ignore.ignored(rel)

    tar.add(path, arcname=".", recursive=False, filter=_whole_seconds)
    for dirpath, dirnames, filenames in os.walk(path):
        rel_dir = os.path.relpath(dirpath, path)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(dirpath, name)
            if left_out(rel):
                if os.path.islink(full) or not ignore.may_include_under(rel):
                    dirnames.remove(name)
                continue
            tar.add(full, arcname=rel, recursive=False, filter=_whole_seconds)
        dirnames.sort()
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not left_out(rel):
                tar.add(os.path.join(dirpath, name), arcname=rel, recursive=False,
                        filter=_whole_seconds)


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


_PRUNE_WARNING = {
    False: "WARNING! This will remove all dangling build cache.",
    True: "WARNING! This will remove all build cache.",
}


def builder(ctx: Context, args: argparse.Namespace) -> int:
    """`builder prune` (the only sub-verb; the parser refuses others), docker's output."""
    if not args.force and not _confirm(ctx, _PRUNE_WARNING[args.all]):
        return 0
    reply = ctx.client().prune_build_cache(all=args.all)
    if reply.deleted:
        ctx.line("Deleted build cache objects:")
        for image_id in reply.deleted:
            ctx.line(image_id)
        ctx.line("")
    ctx.line(f"Total reclaimed space: {human_size(reply.space_reclaimed)}")
    return 0
